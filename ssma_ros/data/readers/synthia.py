"""SYNTHIA (RAND-CITYSCAPES or the SEQS video sequences): RGB, 16-bit depth (cm), labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.readers.base import DatasetReader, read_raw, read_rgb, require_files, sample

VARIANTS = ("rand_cityscapes", "seqs")


def synthia_depth(raw: np.ndarray) -> np.ndarray:
    """SYNTHIA depth PNG to metres.

    The README: "unsigned short images ... depth is encoded in any of the 3 channels in
    centimetres". Channel 0 as OpenCV returns it is used; 0 and the saturated 65535 (no
    return, e.g. sky) are invalid (NaN).
    """
    if raw.dtype != np.uint16:
        raise ValueError(f"SYNTHIA depth must be 16-bit, got {raw.dtype}")
    centimetres = raw[:, :, 0] if raw.ndim == 3 else raw
    depth = centimetres.astype(np.float32) / np.float32(100.0)
    depth[(centimetres == 0) | (centimetres == 65535)] = np.nan
    return depth


def synthia_class_ids(raw: np.ndarray) -> np.ndarray:
    """The class channel of a GT/LABELS image.

    That is the first channel of the file (R), which OpenCV returns last; single-channel images
    are taken as they are.
    """
    return raw[:, :, 2] if raw.ndim == 3 else raw


class SynthiaReader(DatasetReader):
    """Reader of SYNTHIA (RAND_CITYSCAPES and the video sequences).

    Files in the released layouts::

        rand_cityscapes: root/RGB/<n>.png, root/Depth/<n>.png (or Depth/Depth/),
                         root/GT/LABELS/<n>.png
        seqs:            root/RGB/<camera>/<n>.png, root/Depth/<camera>/<n>.png,
                         root/GT/LABELS/<camera>/<n>.png   (camera e.g. "Stereo_Left/Omni_F")

    GT/LABELS hold the class id in the first channel and an instance id in the second; the
    class ids follow the variant's README table and map through the class set's map of the same
    name. The releases ship no per-frame intrinsics; pass ``camera`` if you know them (needed
    for HHA).
    """

    def __init__(
        self,
        root: str | Path,
        variant: str = "rand_cityscapes",
        camera_dir: str = "",
        camera: CameraIntrinsics | None = None,
        class_set: str | ClassSet = "synthia11",
    ) -> None:
        super().__init__(class_set)
        if variant not in VARIANTS:
            raise ValueError(f"unknown SYNTHIA variant {variant!r}; expected one of {VARIANTS}")
        if variant == "seqs" and not camera_dir:
            raise ValueError("SYNTHIA-SEQS needs camera_dir, e.g. 'Stereo_Left/Omni_F'")
        self.root, self.variant, self.camera = Path(root), variant, camera
        rgb_dir = self.root / "RGB" / camera_dir
        depth_dir = self.root / "Depth" / camera_dir
        if variant == "rand_cityscapes" and (depth_dir / "Depth").is_dir():
            depth_dir = depth_dir / "Depth"
        label_dir = self.root / "GT" / "LABELS" / camera_dir
        images = sorted(rgb_dir.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"no SYNTHIA images in {rgb_dir}")
        self.items = [(p, depth_dir / p.name, label_dir / p.name) for p in images]
        require_files([p for item in self.items for p in item[1:]], f"SYNTHIA {variant}")
        self._lut = self.class_set.lut(variant, size=65536)

    def _load(self, item: tuple[Path, Path, Path]) -> dict:
        rgb_path, depth_path, label_path = item
        rgb = read_rgb(rgb_path)
        depth = synthia_depth(read_raw(depth_path))
        label = self._lut[synthia_class_ids(read_raw(label_path))]
        return sample(
            rgb,
            depth,
            "depth",
            "32FC1",
            label,
            self.camera,
            f"synthia/{self.variant}/{rgb_path.stem}",
        )
