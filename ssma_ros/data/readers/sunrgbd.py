"""SUN RGB-D (and NYU-style) scenes: RGB, bit-shifted 16-bit depth, labels to void + 37."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.readers.base import DatasetReader, read_raw, read_rgb, resize_image, sample


def sunrgbd_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth PNG to metres: the uint16 is rotated right by 3 bits, then millimetres.

    As the SUN RGB-D toolbox's read function: ``bitor(bitshift(d, -3), bitshift(d, 13))`` / 1000.
    0 is invalid (NaN).
    """
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"SUN RGB-D depth must be uint16 HxW, got {raw.dtype} {raw.shape}")
    millimetres = (raw >> 3) | (raw << 13)
    depth = millimetres.astype(np.float32) / np.float32(1000.0)
    depth[millimetres == 0] = np.nan
    return depth


def _single(folder: Path, suffixes: tuple[str, ...]) -> Path:
    files = (
        sorted(p for p in folder.glob("*") if p.suffix.lower() in suffixes)
        if folder.is_dir()
        else []
    )
    if len(files) != 1:
        raise FileNotFoundError(
            f"expected exactly one {'/'.join(suffixes)} file in {folder}, found {len(files)}"
        )
    return files[0]


class SunRGBDReader(DatasetReader):
    """Reader of SUN RGB-D scenes with label maps exported to PNG.

    Scene folders as released (SUNRGBD/kv1/NYUdata/NYU0001/, kv2/..., ...)::

        <scene>/image/<name>.jpg
        <scene>/depth_bfx/<name>.png    (hole-filled; or depth/ with depth_folder="depth")
        <scene>/intrinsics.txt          (3x3 K, row-major)
        <scene>/<label_folder>/<name>.png

    Scenes are the folders under ``root`` holding ``image/`` and ``intrinsics.txt``, or those
    listed (relative to ``root``) one per line in ``scene_list``. Depth: see
    :func:`sunrgbd_depth`. Labels: SUN RGB-D ships its 37-class maps only inside
    SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat (MATLAB v7.3/HDF5, field ``seglabel``, 0 = void),
    which this project does not read (it would need h5py); export each map once to a uint8 or
    uint16 PNG in ``<scene>/<label_folder>/`` (default ``label``). NYU40 id images (NYUv2
    exports) work as well: the ``nyu40`` map keeps ids 1-37 and voids 38-40. Image and depth are
    registered by the dataset; the intrinsics describe the depth frame, and RGB is resized to
    the depth size should they differ.
    """

    def __init__(
        self,
        root: str | Path,
        scene_list: str | Path | None = None,
        depth_folder: str = "depth_bfx",
        label_folder: str = "label",
        class_set: str | ClassSet = "sunrgbd37",
    ) -> None:
        super().__init__(class_set)
        self.root = Path(root)
        self.depth_folder, self.label_folder = depth_folder, label_folder
        if scene_list is not None:
            lines = Path(scene_list).read_text(encoding="utf-8").splitlines()
            scenes = [self.root / line.strip().strip("/") for line in lines if line.strip()]
        else:
            scenes = sorted(
                p.parent
                for p in self.root.rglob("intrinsics.txt")
                if (p.parent / "image").is_dir()
            )
        if not scenes:
            raise FileNotFoundError(f"no SUN RGB-D scene folders under {self.root}")
        self.items = scenes
        self._lut = self.class_set.lut("nyu40", size=65536)

    def _load(self, scene: Path) -> dict:
        rgb = read_rgb(_single(scene / "image", (".jpg", ".jpeg", ".png")))
        depth = sunrgbd_depth(read_raw(_single(scene / self.depth_folder, (".png",))))
        labels = read_raw(_single(scene / self.label_folder, (".png",)))
        if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"{scene}: label image must be single-channel 8/16-bit, "
                f"got {labels.dtype} {labels.shape}"
            )
        k = np.array(
            Path(scene / "intrinsics.txt").read_text(encoding="utf-8").split(), dtype=np.float64
        )
        camera = CameraIntrinsics.from_k(k)
        h, w = depth.shape
        if labels.shape != (h, w):
            raise ValueError(
                f"{scene}: label size {labels.shape} differs from depth size {(h, w)}"
            )
        rgb = resize_image(rgb, h, w)
        name = f"sunrgbd/{scene.relative_to(self.root).as_posix()}"
        return sample(rgb, depth, "depth", "32FC1", self._lut[labels], camera, name)
