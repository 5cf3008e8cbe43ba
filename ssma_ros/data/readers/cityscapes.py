"""Cityscapes: RGB + depth from the stereo disparity, fine labels mapped to void + 11 classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.readers.base import DatasetReader, read_raw, read_rgb, require_files, sample


def disparity_to_depth(raw: np.ndarray, baseline_m: float, fx: float) -> np.ndarray:
    """Cityscapes disparity PNG to metres: d = (p - 1) / 256 for p > 0, depth = baseline fx / d.

    p = 0 (no disparity) and p = 1 (zero disparity, infinitely far) are invalid (NaN).
    """
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"Cityscapes disparity must be uint16 HxW, got {raw.dtype} {raw.shape}")
    disparity = (raw.astype(np.float32) - 1.0) / 256.0
    depth = np.full(raw.shape, np.nan, np.float32)
    valid = raw > 1
    depth[valid] = np.float32(baseline_m * fx) / disparity[valid]
    return depth


class CityscapesReader(DatasetReader):
    """Reader of Cityscapes with disparity-derived depth.

    Files in the released layout::

        root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        root/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png   (uint16)
        root/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json
        root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

    Depth = baseline * fx / disparity with ``extrinsic.baseline`` and ``intrinsic.fx`` of the
    frame's camera.json; the camera intrinsics (fx, fy, u0, v0) come from the same file.
    Labels are ``gtFine`` label ids mapped by the class set's ``labelIds`` map
    (``cityscapes11`` by default, ``cityscapes19`` for the 19-class variant). The raw depth is
    returned without hole filling (the papers densify with IP-Basic first; not done here).
    """

    def __init__(
        self, root: str | Path, split: str = "train", class_set: str | ClassSet = "cityscapes11"
    ) -> None:
        super().__init__(class_set)
        self.root, self.split = Path(root), split
        images = sorted((self.root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        if not images:
            raise FileNotFoundError(
                f"no Cityscapes images under {self.root / 'leftImg8bit' / split}"
            )
        for image in images:
            stem = image.name[: -len("_leftImg8bit.png")]
            city = image.parent.name
            self.items.append(
                (
                    image,
                    self.root / "disparity" / split / city / f"{stem}_disparity.png",
                    self.root / "camera" / split / city / f"{stem}_camera.json",
                    self.root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
                )
            )
        require_files([p for item in self.items for p in item[1:]], f"Cityscapes {split}")
        self._lut = self.class_set.lut("labelIds")

    def _load(self, item: tuple[Path, Path, Path, Path]) -> dict:
        image_path, disparity_path, camera_path, label_path = item
        with open(camera_path, encoding="utf-8") as f:
            calibration = json.load(f)
        intrinsic = calibration["intrinsic"]
        camera = CameraIntrinsics(
            intrinsic["fx"], intrinsic["fy"], intrinsic["u0"], intrinsic["v0"]
        )
        depth = disparity_to_depth(
            read_raw(disparity_path), calibration["extrinsic"]["baseline"], camera.fx
        )
        label_ids = read_raw(label_path)
        if label_ids.dtype != np.uint8 or label_ids.ndim != 2:
            raise ValueError(
                f"{label_path}: expected a uint8 label-id image, "
                f"got {label_ids.dtype} {label_ids.shape}"
            )
        name = f"cityscapes/{self.split}/{image_path.name[: -len('_leftImg8bit.png')]}"
        return sample(
            read_rgb(image_path), depth, "depth", "32FC1", self._lut[label_ids], camera, name
        )
