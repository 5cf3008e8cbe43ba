"""Which encodings each input takes, and one frame's messages decoded into the model's arrays.

The rgb input takes colour or 8-bit grey images (rgb8, bgr8, rgba8, bgra8, mono8); the aux
input takes what the bundle's aux modality arrives in (depth: 16UC1 millimetres or 32FC1
metres; infrared, thermal and the other intensity modalities: mono8 or mono16). Anything else
is a problem with a counter and a message, for the caller to count and log (throttled): a
depth image on the rgb topic segmented as if it were a photo is silently wrong output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssma_ros.data.encodings import DEPTH_ENCODINGS, has_valid_depth
from ssma_ros.serve import codec


@dataclass(frozen=True)
class Problem:
    """Why (part of) a frame could not be served: a health counter and a message."""

    counter: str
    message: str


@dataclass(frozen=True)
class Decoded:
    """One frame's arrays, or why it cannot be served.

    `rgb` is H x W x 3 RGB uint8, None when the frame cannot be served at all; `aux` is the raw
    sensor array in `aux_encoding`, None to serve RGB alone. `problem`, when set, is to be
    counted and logged, whether or not the frame is served (all-invalid depth serves RGB alone).
    """

    rgb: np.ndarray | None
    aux: np.ndarray | None = None
    aux_encoding: str | None = None
    problem: Problem | None = None


class FrameDecoder:
    """Decodes rgb (+ aux) messages as the model takes them; messages are duck-typed Images.

    `aux_modality` and `aux_encodings` are the bundle's (``Segmenter.aux_modality`` and
    ``Segmenter.aux_encodings``; an RGB-only model has none). `image_to_numpy` is the converter
    in use (the numpy codec by default, cv_bridge's behind the same checks).
    """

    def __init__(
        self,
        aux_modality: str | None,
        aux_encodings: tuple[str, ...],
        image_to_numpy: Callable[[Any], np.ndarray] = codec.image_to_numpy,
    ) -> None:
        self.aux_modality = aux_modality
        self.aux_encodings = tuple(aux_encodings)
        self._image_to_numpy = image_to_numpy

    def decode(self, rgb_msg: Any, aux_msg: Any | None = None) -> Decoded:
        """Decode one frame; `aux_msg` None serves RGB alone."""
        encoding = rgb_msg.encoding
        if encoding not in codec.RGB_ENCODINGS:
            return Decoded(
                None,
                problem=Problem(
                    "bad_encoding",
                    f"rgb encoding {encoding!r} is not a colour image: the rgb input takes "
                    f"{', '.join(codec.RGB_ENCODINGS)} (depth and thermal go to aux)",
                ),
            )
        try:
            rgb = codec.to_rgb8(self._image_to_numpy(rgb_msg), encoding)
        except codec.ImageFormatError as exc:
            return Decoded(None, problem=Problem("bad_image", f"rgb: {exc}"))
        if aux_msg is None:
            return Decoded(rgb)
        encoding = aux_msg.encoding
        if encoding not in self.aux_encodings:
            return Decoded(
                None,
                problem=Problem(
                    "bad_encoding",
                    f"aux encoding {encoding!r} cannot feed a {self.aux_modality} model; "
                    f"expected one of {list(self.aux_encodings)}"
                    if self.aux_encodings
                    else "aux given to an RGB-only model",
                ),
            )
        try:
            aux = self._image_to_numpy(aux_msg)
        except codec.ImageFormatError as exc:
            return Decoded(None, problem=Problem("bad_image", f"aux: {exc}"))
        if aux.shape[:2] != rgb.shape[:2]:
            return Decoded(
                None,
                problem=Problem(
                    "size_mismatch",
                    f"rgb is {rgb.shape[1]}x{rgb.shape[0]} but aux is {aux.shape[1]}x"
                    f"{aux.shape[0]}: publish aux registered to the rgb camera "
                    "(e.g. aligned depth)",
                ),
            )
        if encoding in DEPTH_ENCODINGS and not has_valid_depth(aux, encoding):
            return Decoded(
                rgb,
                problem=Problem(
                    "aux_all_invalid",
                    "depth frame has no valid pixel: serving this frame from RGB alone",
                ),
            )
        return Decoded(rgb, aux, encoding)
