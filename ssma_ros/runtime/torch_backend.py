"""PyTorch backend: runs the bundle's checkpoint (model.pt) eagerly, on the CPU or a CUDA GPU."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ssma_ros.bundle import Bundle
from ssma_ros.runtime.base import (
    BackendUnavailable,
    Log,
    check_precision,
    default_logger,
    ordered_inputs,
    parse_device,
)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(
            f"torch not importable ({exc}); install torch or use backend onnxruntime"
        ) from exc
    return torch


def _no_checkpoint(bundle: Bundle) -> str:
    return f"bundle {bundle.name} has no model.pt (export it with ssma-export to include one)"


def why_unavailable(bundle: Bundle, device_kind: str) -> str | None:
    """None when this backend can run the bundle on `device_kind` ('cpu'/'cuda') here, else why not."""
    if bundle.checkpoint_path is None:
        return _no_checkpoint(bundle)
    try:
        torch = _import_torch()
    except BackendUnavailable as exc:
        return str(exc)
    if device_kind == "cuda" and not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)"
    return None


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cuda:0",
        precision: str = "fp16",
        *,
        threads: int = 0,
        logger: Log | None = None,
    ) -> None:
        torch = _import_torch()
        from ssma_ros.model.base import OUT
        from ssma_ros.model.checkpoint import load_checkpoint

        log = logger or default_logger()
        check_precision(precision)
        if bundle.checkpoint_path is None:
            raise BackendUnavailable(_no_checkpoint(bundle))
        kind, index = parse_device(device)
        if kind == "cuda" and not torch.cuda.is_available():
            log.warning(
                f"torch sees no CUDA GPU; the torch backend runs on the CPU instead of {device}"
            )
            kind = "cpu"
        if kind == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(kind, index) if kind == "cuda" else torch.device("cpu")
        self.device = str(self._device)
        # Half precision only pays (and only is well supported) on the GPU.
        self.precision = "fp16" if kind == "cuda" and precision == "fp16" else "fp32"
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32

        model, _ = load_checkpoint(bundle.checkpoint_path)
        self._model = model.eval().to(self._device, self._dtype)
        self._logits_key = OUT
        self._specs = bundle.inputs

    def infer(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        arrays = ordered_inputs(self._specs, inputs)
        with torch.inference_mode():
            tensors = [torch.from_numpy(a).to(self._device, self._dtype) for a in arrays]
            logits = self._model(*tensors)[self._logits_key]
            return logits.float().cpu().numpy()

    def close(self) -> None:
        self._model = None
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()
