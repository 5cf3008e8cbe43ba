"""The one small interface every inference backend implements, and helpers they share.

Backends take the network inputs as numpy arrays (already encoded and normalised by
ssma_ros.data.preprocess) and return float32 logits (1, C, H, W) at the network input resolution.
"""

from __future__ import annotations

import logging
from typing import Mapping, Protocol, Sequence

import numpy as np

from ssma_ros.bundle import TensorSpec

PRECISIONS = ("fp16", "fp32")


class Backend(Protocol):
    name: str  # "tensorrt" | "onnxruntime" | "torch"
    device: str  # where it actually runs: "cpu" or "cuda:N"
    precision: str  # what it actually computes in: "fp16" or "fp32"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits (1, C, H, W) float32 for inputs keyed by bundle input name ("rgb", "aux")."""
        ...

    def close(self) -> None:
        """Release the session/engine and its device memory; the backend is unusable afterwards."""
        ...


class BackendUnavailable(RuntimeError):
    """This backend cannot run here; the message says why and what to do about it."""


class Log(Protocol):
    """What backends need of a logger; both logging.Logger and rclpy's node logger fit."""

    def info(self, msg: str) -> object: ...

    def warning(self, msg: str) -> object: ...


def default_logger() -> logging.Logger:
    return logging.getLogger("ssma_ros.runtime")


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' -> ('cpu', 0); 'cuda' -> ('cuda', 0); 'cuda:1' -> ('cuda', 1)."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        return "cuda", int(index or 0)
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def ordered_inputs(
    specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """Return the inputs in network order as C-contiguous float32, each checked by its spec."""
    missing = [s.name for s in specs if s.name not in inputs]
    if missing:
        raise ValueError(f"missing network input(s) {missing}; got {sorted(inputs)}")
    arrays = []
    for spec in specs:
        array = np.ascontiguousarray(inputs[spec.name], dtype=np.float32)
        if array.shape != spec.shape:
            raise ValueError(
                f"input {spec.name!r} has shape {array.shape}, the network takes {spec.shape}"
            )
        arrays.append(array)
    return arrays
