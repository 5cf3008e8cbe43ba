"""Shared pieces of the dataset readers: image I/O, alignment, the sample dict."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ssma_ros.data.classes import ClassSet, load_class_set
from ssma_ros.data.encodings import CameraIntrinsics


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit colour image as uint8 RGB (OpenCV decodes to BGR)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_raw(path: Path) -> np.ndarray:
    """An image exactly as stored (16-bit PNGs stay uint16; colour channels in BGR order)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return image


def read_gray(path: Path) -> np.ndarray:
    """A single-channel image as stored (uint8 or uint16); a colour file must be grey."""
    image = read_raw(path)
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if not (
            np.array_equal(image[:, :, 0], image[:, :, 1])
            and np.array_equal(image[:, :, 0], image[:, :, 2])
        ):
            raise ValueError(f"{path}: expected a single-channel image, got colour")
        image = image[:, :, 0]
    return image


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a photo-like image: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def sample(
    rgb: np.ndarray,
    aux: np.ndarray,
    aux_kind: str,
    aux_encoding: str,
    label: np.ndarray,
    camera: CameraIntrinsics | None,
    name: str,
) -> dict:
    """The sample dict every reader returns; checks that the arrays are aligned."""
    if not (rgb.shape[:2] == aux.shape[:2] == label.shape):
        raise ValueError(
            f"{name}: misaligned sample rgb {rgb.shape} aux {aux.shape} label {label.shape}"
        )
    return {
        "rgb": rgb,
        "aux": aux,
        "aux_kind": aux_kind,
        "aux_encoding": aux_encoding,
        "label": label,
        "camera": camera,
        "name": name,
    }


class DatasetReader:
    """A sequence of samples; subclasses list ``self.items`` and implement ``_load``.

    Each sample is a dict: ``rgb`` uint8 HxWx3 RGB, ``aux`` the raw aux array (float32 metres
    with NaN invalid for depth; uint8/uint16 for NIR or other intensity images), ``aux_kind``
    (a Preprocess modality: depth, nir, evi, depth_gray), ``aux_encoding`` (its sensor_msgs
    encoding: 32FC1, mono8, mono16), ``label`` uint8 class ids of ``class_set`` (0 = void),
    ``camera`` (CameraIntrinsics of rgb/aux/label, or None) and ``name``. All arrays share
    one size.
    """

    def __init__(self, class_set: str | ClassSet) -> None:
        self.class_set = (
            class_set if isinstance(class_set, ClassSet) else load_class_set(class_set)
        )
        self.items: list = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        if not -len(self.items) <= i < len(self.items):
            raise IndexError(f"sample {i} out of range for {len(self.items)} samples")
        return self._load(self.items[i])

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]

    def _load(self, item) -> dict:
        raise NotImplementedError


def require_files(paths: list[Path], what: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what}: missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"
        )
