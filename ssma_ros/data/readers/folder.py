"""A robot's own data: the folder `ssma-dataset from-bag` writes, plus labels and classes.

    root/rgb/NAME.png           8-bit colour (.png or .jpg)
    root/aux/NAME.png           depth: 16-bit millimetres, 0 = invalid; infrared: 8 or 16 bit
    root/labels/NAME.png        class ids (8- or 16-bit single channel), one per pixel
    root/classes.yaml           the class set: names, palette, void (data/classes.py format)
    root/dataset.yaml           optional (from-bag): aux kind (depth | intensity) and encoding
    root/camera_info.yaml       optional: intrinsics (camera_calibration_parsers layout)
    root/train.txt, val.txt     optional: the split as lists of NAMEs

Frames are the NAMEs that have a label (unlabelled frames are left out). The split is the lists
(given as arguments, or train.txt/val.txt in root), else a seeded random fraction for
validation. Every label is checked when the reader is made: ids outside the class set and
sizes that differ from the rgb image raise `FolderDatasetError` naming the file, so training
never starts on a bad label.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import yaml

from ssma_ros.data.classes import ClassSet
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.readers.base import DatasetReader, read_gray, read_raw, read_rgb, sample

SPLITS = ("train", "val", "all")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FolderDatasetError(ValueError):
    """A dataset folder that cannot be trained on; the message names the file."""


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image: from the PNG header without decoding, else by reading it."""
    with path.open("rb") as f:
        head = f.read(24)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    return read_raw(path).shape[:2]


def _by_name(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in _IMAGE_SUFFIXES}


def _read_list(path: Path, known: dict[str, Path]) -> list[str]:
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FolderDatasetError(
            f"{path}: {len(unknown)} names without a labelled frame, e.g. {unknown[:3]}"
        )
    return names


def read_camera_info(path: Path) -> tuple[CameraIntrinsics, tuple[int, int]]:
    """Intrinsics and (height, width) of a camera_info.yaml."""
    try:
        data = yaml.safe_load(path.read_text())
        size = (int(data["image_height"]), int(data["image_width"]))
        return CameraIntrinsics.from_k(data["camera_matrix"]["data"]), size
    except (OSError, yaml.YAMLError, KeyError, TypeError, IndexError, ValueError) as err:
        raise FolderDatasetError(f"{path}: not a camera_info.yaml ({err})") from err


class FolderReader(DatasetReader):
    """Frames of a dataset folder (see the module doc).

    ``split``: "train", "val" or "all". ``classes``: class-set file (default root/classes.yaml)
    or name. ``train_list`` / ``val_list``: files of NAMEs (default root/train.txt and
    root/val.txt when present); without lists, ``val_fraction`` of the frames, drawn with
    ``seed``, are validation. ``aux``: "depth" or "infrared"; default from dataset.yaml, else
    16-bit aux images are depth and 8-bit ones infrared.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        classes: str | Path | ClassSet | None = None,
        train_list: str | Path | None = None,
        val_list: str | Path | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        aux: str | None = None,
    ) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: expected one of {SPLITS}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction {val_fraction}: expected 0 <= fraction < 1")
        classes_path = self.root / "classes.yaml" if classes is None else classes
        if isinstance(classes_path, Path) and not classes_path.is_file():
            raise FolderDatasetError(
                f"{classes_path}: no classes file (names, palette and void; "
                "see config/classes/*.yaml)"
            )
        try:
            super().__init__(
                classes_path if isinstance(classes_path, ClassSet) else str(classes_path)
            )
        except (OSError, ValueError) as err:
            raise FolderDatasetError(f"{classes_path}: {err}") from err
        self.split = split
        rgb, aux_files, labels = (_by_name(self.root / d) for d in ("rgb", "aux", "labels"))
        if not labels:
            raise FolderDatasetError(f"{self.root / 'labels'}: no label images (NAME.png)")
        for name, path in labels.items():
            for folder, files in (("rgb", rgb), ("aux", aux_files)):
                if name not in files:
                    raise FolderDatasetError(f"{path}: no {folder}/{name}.* beside it")
        self.aux_kind, self.aux_encoding = self._aux(aux, aux_files[next(iter(labels))])
        self.camera, self.camera_size = None, None
        if (self.root / "camera_info.yaml").is_file():
            self.camera, self.camera_size = read_camera_info(self.root / "camera_info.yaml")
        names = self._split(sorted(labels), labels, train_list, val_list, val_fraction, seed)
        self.items = [(n, rgb[n], aux_files[n], labels[n]) for n in names]
        for item in self.items:
            self._check(item)

    def _aux(self, aux: str | None, example: Path) -> tuple[str, str]:
        """(Preprocess modality, sensor encoding) of the aux images."""
        meta_path = self.root / "dataset.yaml"
        kind = aux
        if kind is None and meta_path.is_file():
            meta = yaml.safe_load(meta_path.read_text()) or {}
            kind = {"depth": "depth", "intensity": "infrared"}.get(
                (meta.get("aux") or {}).get("kind")
            )
        deep = read_raw(example).dtype == np.uint16
        if kind is None:
            kind = "depth" if deep else "infrared"
        if kind not in ("depth", "infrared"):
            raise ValueError(f"aux {kind!r}: expected 'depth' or 'infrared'")
        if kind == "depth" and not deep:
            raise FolderDatasetError(f"{example}: depth must be a 16-bit PNG of millimetres")
        return kind, "16UC1" if kind == "depth" else "mono16" if deep else "mono8"

    def _split(
        self,
        names: list[str],
        labels: dict[str, Path],
        train_list: str | Path | None,
        val_list: str | Path | None,
        val_fraction: float,
        seed: int,
    ) -> list[str]:
        if self.split == "all":
            return names
        lists = {
            "train": Path(train_list) if train_list else self.root / "train.txt",
            "val": Path(val_list) if val_list else self.root / "val.txt",
        }
        if train_list or val_list or lists["val"].is_file():
            if not lists[self.split].is_file():
                raise FolderDatasetError(f"{lists[self.split]}: no {self.split} list")
            return _read_list(lists[self.split], labels)
        order = np.random.default_rng(seed).permutation(len(names))
        n_val = int(round(len(names) * val_fraction))
        if val_fraction > 0 and len(names) > 1:
            n_val = min(max(n_val, 1), len(names) - 1)  # both splits keep a frame
        val = {names[i] for i in order[:n_val]}
        return [n for n in names if (n in val) == (self.split == "val")]

    def _check(self, item: tuple[str, Path, Path, Path]) -> None:
        _, rgb_path, aux_path, label_path = item
        size = image_size(rgb_path)
        for path in (aux_path, label_path):
            if image_size(path) != size:
                h, w = image_size(path)
                raise FolderDatasetError(
                    f"{path}: {w}x{h}, but {rgb_path.name} is {size[1]}x{size[0]}"
                )
        self._label(label_path)

    def _label(self, path: Path) -> np.ndarray:
        try:
            label = read_gray(path)
        except (OSError, ValueError) as err:
            raise FolderDatasetError(f"{path}: {err}") from err
        ids = np.unique(label)
        bad = ids[ids >= self.class_set.num_classes]
        if bad.size:
            raise FolderDatasetError(
                f"{path}: class ids {bad[:5].tolist()} are not in the class set "
                f"{self.class_set.name!r} (0..{self.class_set.num_classes - 1})"
            )
        return label.astype(np.uint8)

    def _load(self, item: tuple[str, Path, Path, Path]) -> dict:
        name, rgb_path, aux_path, label_path = item
        rgb = read_rgb(rgb_path)
        aux = read_gray(aux_path)
        camera = self.camera
        if camera is not None and self.camera_size != rgb.shape[:2]:
            (ch, cw), (h, w) = self.camera_size, rgb.shape[:2]
            camera = camera.scaled(w / cw, h / ch)
        label = read_gray(label_path).astype(np.uint8)  # its ids were checked when listed
        return sample(rgb, aux, self.aux_kind, self.aux_encoding, label, camera, name)
