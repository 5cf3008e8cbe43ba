"""Bundle + backend + the shared preprocessing: numpy frames in, logits out. No ROS here."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ssma_ros.bundle import Bundle
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.preprocess import Preprocess
from ssma_ros.runtime.base import Backend
from ssma_ros.serve.outputs import postprocess
from ssma_ros.share import shipped_bundle


def default_bundle_path() -> Path:
    """The default bundle as installed: colcon's share/ folder, a pip prefix, or this checkout."""
    try:
        return shipped_bundle("default")
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no default model bundle: {exc}; set the 'bundle' parameter to a bundle "
            "folder made with ssma-export"
        ) from None


class Segmenter:
    """Runs one bundle: encodes frames exactly as in training, then calls the backend."""

    def __init__(self, bundle: Bundle, backend: Backend) -> None:
        self.bundle = bundle
        self.backend = backend
        self.preprocess = Preprocess.from_dict(bundle.preprocess)
        names = [spec.name for spec in bundle.inputs]
        self.uses_aux = "aux" in names
        if not self.uses_aux and names != ["rgb"]:
            raise ValueError(
                f"bundle {bundle.name}: inputs {names} are neither ['rgb'] nor ['rgb', 'aux']"
            )

    @property
    def aux_modality(self) -> str | None:
        """'depth', 'ir', ... as the model was trained, or None for an RGB-only model."""
        spec = self.preprocess.aux_spec
        return spec.modality if (self.uses_aux and spec is not None) else None

    @property
    def needs_camera(self) -> bool:
        """Whether the aux encoding needs the camera intrinsics (HHA: height above ground)."""
        spec = self.preprocess.aux_spec
        return self.uses_aux and spec is not None and spec.encoding == "hha"

    @property
    def aux_encodings(self) -> tuple[str, ...]:
        """The sensor_msgs encodings the aux input may arrive in."""
        spec = self.preprocess.aux_spec
        return spec.sensor_encodings if (self.uses_aux and spec is not None) else ()

    def inputs(
        self,
        rgb: np.ndarray,
        aux: np.ndarray | None = None,
        aux_encoding: str | None = None,
        camera: CameraIntrinsics | None = None,
    ) -> dict[str, np.ndarray]:
        """Network inputs for rgb and aux, encoded and normalised exactly as in training.

        rgb is uint8 H x W x 3 RGB; aux is the raw sensor array (None = serve RGB alone).
        """
        inputs = {"rgb": self.preprocess.rgb(rgb)}
        if self.uses_aux:
            if aux is None:
                inputs["aux"] = self.preprocess.blank_aux()
            else:
                inputs["aux"] = self.preprocess.aux(aux, aux_encoding, camera, rgb)
        return inputs

    def infer(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (1, C, h, w) at the network resolution."""
        return self.backend.infer(inputs)

    def warm_up(self, runs: int = 3) -> float:
        """Serve `runs` black frames at the network size through inputs, backend and outputs.

        So the first camera frames do not pay for the backend's lazy start (memory arenas, kernel
        selection: the first of them took 50-90 ms instead of 28 on a CPU). Returns the seconds.
        """
        started = time.perf_counter()
        black = np.zeros((self.preprocess.height, self.preprocess.width, 3), np.uint8)
        for _ in range(runs):
            postprocess(self.infer(self.inputs(black)), black.shape[:2]).confidence_mono8()
        return time.perf_counter() - started

    def close(self) -> None:
        self.backend.close()
