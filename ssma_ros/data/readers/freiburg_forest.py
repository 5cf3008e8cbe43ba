"""Freiburg Forest (DeepScene): RGB + NIR / EVI / depth images, colour-coded labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.preprocess import resize_nearest
from ssma_ros.data.readers.base import DatasetReader, read_gray, read_rgb, resize_image, sample

# aux option -> (folder of freiburg_forest_annotated/<split>/, modality it is served as)
AUX_FOLDERS = {
    "nir": ("nir_gray", "nir"),
    "evi": ("evi_gray", "evi"),
    "depth": ("depth_gray", "depth_gray"),
}
_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _frame_id(path: Path) -> str:
    # Files of one view share the part before the first "_" ("b1-09517_Clipped.jpg",
    # "b1-09517_mask.png", "b1-09517.tif").
    return path.name.split(".")[0].split("_")[0]


def _index(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"Freiburg Forest folder missing: {folder}")
    return {_frame_id(p): p for p in sorted(folder.iterdir()) if p.suffix.lower() in _EXTENSIONS}


class FreiburgForestReader(DatasetReader):
    """Reader of Freiburg Forest with NIR, EVI or depth as the auxiliary modality.

    Files in the layout of freiburg_forest_annotated.tar.gz::

        root/<train|test>/rgb/<id>_Clipped.jpg
        root/<train|test>/GT_color/<id>_mask.png      (colour-coded ground truth)
        root/<train|test>/nir_gray/<id>.tif           (1-channel NIR)
        root/<train|test>/evi_gray/<id>.tif           (1-channel EVI)
        root/<train|test>/depth_gray/<id>.png         (1-channel relative depth)

    Files of one view are matched by the id before the first underscore; views missing any
    needed file are skipped. ``aux``: ``nir`` (served as modality "nir": the EVI encoding is
    computed from it and the RGB image), ``evi`` (the dataset's EVI image, modality "evi") or
    ``depth`` (its stereo depth image, not metric, modality "depth_gray"). The README says the
    images differ in size; everything is resized to the ground truth's size (bilinear/area for
    RGB and NIR/EVI, nearest for depth and labels). GT colours map per the README (tree and
    vegetation are both 3) with ``color_tolerance`` for JPEG-compressed masks; other colours
    are void.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        aux: str = "nir",
        class_set: str | ClassSet = "freiburg_forest",
        color_tolerance: int = 24,
    ) -> None:
        super().__init__(class_set)
        if aux not in AUX_FOLDERS:
            raise ValueError(f"unknown aux {aux!r}; expected one of {tuple(AUX_FOLDERS)}")
        self.root, self.split, self.aux = Path(root), split, aux
        self.color_tolerance = color_tolerance
        base = self.root / split
        rgb, labels, auxes = (
            _index(base / "rgb"),
            _index(base / "GT_color"),
            _index(base / AUX_FOLDERS[aux][0]),
        )
        self.items = [
            (i, rgb[i], auxes[i], labels[i]) for i in sorted(rgb) if i in labels and i in auxes
        ]
        if not self.items:
            raise FileNotFoundError(
                "no complete Freiburg Forest views "
                f"(rgb, GT_color, {AUX_FOLDERS[aux][0]}) in {base}"
            )

    def _load(self, item: tuple[str, Path, Path, Path]) -> dict:
        frame_id, rgb_path, aux_path, label_path = item
        label = self.class_set.map_colors(read_rgb(label_path), self.color_tolerance)
        h, w = label.shape
        rgb = resize_image(read_rgb(rgb_path), h, w)
        aux = read_gray(aux_path)
        if aux.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{aux_path}: expected an 8- or 16-bit image, got {aux.dtype}")
        modality = AUX_FOLDERS[self.aux][1]
        aux = resize_nearest(aux, h, w) if modality == "depth_gray" else resize_image(aux, h, w)
        encoding = "mono8" if aux.dtype == np.uint8 else "mono16"
        return sample(
            rgb, aux, modality, encoding, label, None, f"freiburg_forest/{self.split}/{frame_id}"
        )
