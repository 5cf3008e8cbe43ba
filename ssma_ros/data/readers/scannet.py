"""ScanNet v2 frames exported by its SensReader: RGB, depth (mm), labels to void + 20."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.encodings import CameraIntrinsics, depth_to_metres
from ssma_ros.data.preprocess import resize_nearest
from ssma_ros.data.readers.base import DatasetReader, read_raw, read_rgb, resize_image, sample


def read_label_map(tsv: Path, source: str = "id", target: str = "nyu40id") -> dict[int, int]:
    """Columns of scannetv2-labels.combined.tsv as {raw ScanNet id: NYU40 id}."""
    mapping: dict[int, int] = {}
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if (
            reader.fieldnames is None
            or source not in reader.fieldnames
            or target not in reader.fieldnames
        ):
            raise ValueError(
                f"{tsv}: needs columns {source!r} and {target!r}, has {reader.fieldnames}"
            )
        for row in reader:
            if row[source].strip() and row[target].strip():
                mapping[int(row[source])] = int(row[target])
    return mapping


class ScanNetReader(DatasetReader):
    """Reader of ScanNet v2 RGB-D frames with NYU40-mapped labels.

    Scenes after SensReader export and unzipping ``<scene>_2d-label-filt.zip``::

        root/scans/<scene>/color/<i>.jpg                 (1296x968)
        root/scans/<scene>/depth/<i>.png                 (640x480 uint16 millimetres, 0 invalid)
        root/scans/<scene>/intrinsic/intrinsic_depth.txt (4x4)
        root/scans/<scene>/label-filt/<i>.png            (uint16 raw ScanNet category ids)
        root/scannetv2-labels.combined.tsv

    ``scenes`` lists scene names (e.g. from scannetv2_train.txt); default all under
    ``root/scans``. ``frame_step`` keeps every n-th frame (consecutive frames are near
    duplicates; the ScanNet 2D benchmark uses every 100th). Labels go raw id -> NYU40 id (tsv
    columns ``id`` -> ``nyu40id``) -> class via the class set's ``nyu40`` map; ids missing from
    the tsv are void. Alignment: RGB and label are resized to the depth frame (area for RGB,
    nearest for labels) and ``camera`` is the depth intrinsics.
    """

    def __init__(
        self,
        root: str | Path,
        scenes: list[str] | None = None,
        frame_step: int = 1,
        label_map: str | Path | None = None,
        class_set: str | ClassSet = "scannet20",
    ) -> None:
        super().__init__(class_set)
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        self.root = Path(root)
        scans = self.root / "scans"
        names = (
            scenes if scenes is not None else sorted(p.name for p in scans.iterdir() if p.is_dir())
        )
        for scene in names:
            depth_dir = scans / scene / "depth"
            frames = sorted(int(p.stem) for p in depth_dir.glob("*.png"))
            if not frames:
                raise FileNotFoundError(f"no depth frames in {depth_dir}")
            self.items += [(scene, f) for f in frames[::frame_step]]
        if not self.items:
            raise FileNotFoundError(f"no ScanNet scenes under {scans}")
        raw_to_nyu40 = read_label_map(
            Path(label_map) if label_map else self.root / "scannetv2-labels.combined.tsv"
        )
        nyu40 = self.class_set.lut("nyu40")
        self._lut = np.zeros(65536, np.uint8)
        for raw, nyu in raw_to_nyu40.items():
            if 0 <= raw < 65536 and 0 <= nyu < len(nyu40):
                self._lut[raw] = nyu40[nyu]
        self._cameras: dict[str, CameraIntrinsics] = {}

    def _camera(self, scene: str) -> CameraIntrinsics:
        if scene not in self._cameras:
            text = (self.root / "scans" / scene / "intrinsic" / "intrinsic_depth.txt").read_text(
                encoding="utf-8"
            )
            self._cameras[scene] = CameraIntrinsics.from_k(
                np.array(text.split(), dtype=np.float64)
            )
        return self._cameras[scene]

    def _load(self, item: tuple[str, int]) -> dict:
        scene, frame = item
        base = self.root / "scans" / scene
        depth = depth_to_metres(read_raw(base / "depth" / f"{frame}.png"), "16UC1")
        h, w = depth.shape
        rgb = resize_image(read_rgb(base / "color" / f"{frame}.jpg"), h, w)
        raw_labels = read_raw(base / "label-filt" / f"{frame}.png")
        if raw_labels.ndim != 2 or raw_labels.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"{scene}/{frame}: label must be single-channel 8/16-bit, got {raw_labels.dtype}"
            )
        label = resize_nearest(self._lut[raw_labels], h, w)
        return sample(
            rgb, depth, "depth", "32FC1", label, self._camera(scene), f"scannet/{scene}/{frame}"
        )
