"""Training and evaluation datasets.

Frames from the synthetic generator or a dataset reader, encoded and normalised by
`data.preprocess.Preprocess` (the same code the ROS node runs), augmented as in the paper, with
modality dropout.

Per sample: raw frame -> Preprocess.encode_rgb / encode_aux / label (uint8 at network size)
-> geometric augmentation on all three, cut to the training crop if one is set, photometric on
RGB (train only, `augment.py`)
-> Preprocess.normalise_rgb / normalise_aux -> modality dropout (train only) -> tensors.

Randomness (condition mix, augmentation, dropout) is drawn from a generator seeded by
(seed, epoch, index): a sample is the same whatever the worker count, rank count or resume
point.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ssma_ros.data import synthetic
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.preprocess import AuxSpec, Preprocess
from ssma_ros.train.augment import AugmentConfig, photometric, random_matrix, warp
from ssma_ros.train.config import ModalityDropoutSection, TrainConfig

#: A raw frame, as the dataset readers and `synthetic.SyntheticDataset` give it: "rgb" uint8
#: HxWx3, "aux" the raw sensor array, "aux_encoding" its sensor_msgs encoding (16UC1, 32FC1,
#: mono8, mono16), "label" uint8 HxW (0 = void), "camera" intrinsics or None, "name".
Frame = dict[str, Any]


class FrameSource(Protocol):
    """Frames by index, optionally varying between epochs.

    `epoch` lets a source vary a frame between epochs (the synthetic training source redraws the
    weather); sources of fixed frames ignore it.
    """

    def __len__(self) -> int: ...

    def frame(self, index: int, epoch: int) -> Frame: ...


#: Geometry of a crop without augmentation: a random window at the frame's own scale.
CROP_ONLY = AugmentConfig(scale=(1.0, 1.0), rotation_deg=0.0, skew=0.0, flip=False)


class FixedFrames:
    """A FrameSource over an indexable of frames, or over the frames `indices` of it.

    The indexable is a dataset reader or a SyntheticDataset.
    """

    def __init__(self, items: Sequence[Frame], indices: Sequence[int] | None = None) -> None:
        self.items = items
        self.indices = list(range(len(items)) if indices is None else indices)

    def __len__(self) -> int:
        return len(self.indices)

    def frame(self, index: int, epoch: int) -> Frame:
        return self.items[self.indices[index]]


@dataclass(frozen=True)
class DataInfo:
    """What a model trained on this data needs to be served: classes, palette, preprocessing."""

    classes: tuple[str, ...]
    palette: np.ndarray  # (C, 3) uint8
    preprocess: Preprocess
    void_index: int = 0


def blank_rgb(preprocess: Preprocess) -> np.ndarray:
    """The RGB input for "no RGB": a normalised black image, float32 (1, 3, H, W).

    It is the RGB counterpart of `Preprocess.blank_aux` (the node never needs it: it always has
    RGB).
    """
    return preprocess.normalise_rgb(np.zeros((preprocess.height, preprocess.width, 3), np.uint8))


class SegDataset(Dataset):
    """Frames of a `FrameSource`, encoded, augmented (train) and normalised.

    Item `key` is sample `key % len` in epoch `key // len` (see `dist.TrainBatches`); it returns
    {"rgb": float32 (3, H, W), "aux": float32 (3, H, W), "label": int64 (H, W), "index": int},
    (H, W) the preprocess size or, with `crop`, a random window of that size's frames.
    """

    def __init__(
        self,
        source: FrameSource,
        preprocess: Preprocess,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        dropout: ModalityDropoutSection | None = None,
        blank: str | None = None,
        crop: tuple[int, int] | None = None,
    ) -> None:
        if blank not in (None, "rgb", "aux"):
            raise ValueError(f"blank must be None, 'rgb' or 'aux', got {blank!r}")
        if crop is not None and not (
            0 < crop[0] <= preprocess.height and 0 < crop[1] <= preprocess.width
        ):
            raise ValueError(
                f"crop {tuple(crop)} does not fit in frames of "
                f"{preprocess.height}x{preprocess.width}"
            )
        self.source = source
        self.preprocess = preprocess
        self.seed = seed
        self.augment = augment if augment is not None and augment.enabled else None
        self.dropout = dropout
        self.blank = blank  # an evaluation set without one modality (sensor failure)
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        # Normalisation checks the image size; a crop is normalised as a frame of its own size.
        self._normalise = (
            preprocess
            if crop is None
            else dataclasses.replace(preprocess, height=self.crop[0], width=self.crop[1])
        )
        self._blank = {
            "aux": self._normalise.blank_aux(1)[0],
            "rgb": blank_rgb(self._normalise)[0],
        }

    def __len__(self) -> int:
        return len(self.source)

    def encode(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw frame -> (rgb, aux, label) uint8 at network size, as the node would encode it."""
        p = self.preprocess
        rgb = p.encode_rgb(frame["rgb"])
        aux = p.encode_aux(
            frame["aux"], frame["aux_encoding"], frame.get("camera"), rgb=frame["rgb"]
        )
        return rgb, aux, p.label(frame["label"])

    def images(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
        """Encoded and (if training) augmented uint8 images of item `key`, and its generator."""
        epoch, index = divmod(key, len(self))
        rng = np.random.default_rng([self.seed, epoch, index])
        rgb, aux, label = self.encode(self.source.frame(index, epoch))
        if self.augment is not None or self.crop is not None:
            hw = label.shape
            out = self.crop or hw
            matrix = random_matrix(
                rng, hw, out, self.augment or CROP_ONLY, stretch=self.crop is None
            )
            rgb = warp(rgb, matrix, out, nearest=False, fill=0)
            aux = warp(
                aux, matrix, out, nearest=True, fill=0
            )  # black = "no data" in every encoding
            label = warp(label, matrix, out, nearest=True, fill=0)  # void
        if self.augment is not None:
            rgb = photometric(rgb, rng, self.augment)
        return rgb, aux, label, rng

    def __getitem__(self, key: int) -> dict[str, Any]:
        return self._tensors(*self.images(key), index=key % len(self))

    def _tensors(
        self,
        rgb: np.ndarray,
        aux: np.ndarray,
        label: np.ndarray,
        rng: np.random.Generator,
        index: int,
    ) -> dict[str, Any]:
        """Normalise, apply modality dropout (or this set's fixed blanking), convert to tensors."""
        sample = {
            "rgb": self._normalise.normalise_rgb(rgb)[0],
            "aux": self._normalise.normalise_aux(aux)[0],
        }
        drop = self.blank
        if self.dropout is not None:
            u = rng.random()
            if u < self.dropout.aux:
                drop = "aux"
            elif u < self.dropout.aux + self.dropout.rgb:
                drop = "rgb"
        if drop is not None:
            sample[drop] = self._blank[drop]
        return {
            "rgb": torch.from_numpy(np.ascontiguousarray(sample["rgb"])),
            "aux": torch.from_numpy(np.ascontiguousarray(sample["aux"])),
            "label": torch.from_numpy(label.astype(np.int64)),
            "index": index,
        }

    def example(self, index: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Item `index` (of epoch 0) and its uint8 images before normalisation, for plots.

        The images are keyed "rgb" and "aux"; a blanked modality shows black.
        """
        rgb, aux, label, rng = self.images(index)
        sample = self._tensors(rgb, aux, label, rng, index)
        if self.blank is not None:
            (rgb if self.blank == "rgb" else aux)[:] = 0
        return sample, {"rgb": rgb, "aux": aux}


# -- sources --------------------------------------------------------------------------------


class SyntheticMix:
    """Training frames of the scene generator, redrawn under a random condition every epoch.

    Scenes `first .. first + length - 1`, each drawn in every epoch under a condition picked with
    the probabilities of `conditions` and, for adverse ones, a strength in `strength`, from a
    generator seeded by (scene seed, scene, epoch). So a scene is seen in fog in one epoch and at
    night in another, and the mix holds on average. `aux`: "depth" (32FC1 metres) or "thermal"
    (mono16 centikelvin).
    """

    def __init__(
        self,
        scenes: Any,
        first: int,
        length: int,
        conditions: dict[str, float],
        strength: tuple[float, float],
        aux: str,
    ) -> None:
        unknown = set(conditions) - set(scenes.conditions)
        if unknown:
            raise ValueError(
                f"data.train_conditions: unknown {sorted(unknown)}; "
                f"the generator knows {list(scenes.conditions)}"
            )
        self.scenes = scenes
        self.first = first
        self.length = length
        self.names = [c for c, share in conditions.items() if share > 0]
        shares = np.array([conditions[c] for c in self.names], dtype=np.float64)
        self.probabilities = shares / shares.sum()
        self.strength = strength
        self.aux, self.aux_encoding = aux, synthetic.AUX_KINDS[aux][1]

    def __len__(self) -> int:
        return self.length

    def condition(self, index: int, epoch: int) -> tuple[str, float]:
        rng = np.random.default_rng([self.scenes.seed, self.first + index, epoch, 0xC0])
        condition = str(rng.choice(self.names, p=self.probabilities))
        strength = float(rng.uniform(*self.strength)) if condition != "clear" else 0.0
        return condition, strength

    def frame(self, index: int, epoch: int) -> Frame:
        condition, strength = self.condition(index, epoch)
        scene = self.first + index
        s = self.scenes.sample(scene, condition=condition, strength=strength)
        return {
            "rgb": s.rgb,
            "aux": s.depth if self.aux == "depth" else s.thermal,
            "aux_encoding": self.aux_encoding,
            "label": s.label,
            "camera": s.camera,
            "name": f"synthetic/train/{scene:07d}/{condition}",
        }


class CachedFrames:
    """A FrameSource holding every frame of `source` (as drawn in epoch 0) in memory.

    The frames are rendered once and kept in the .npz `path`. The file stores `recipe` (what made
    the frames); a file with another recipe is rendered again, so a changed config never trains
    on stale frames. Frames must share one shape and aux encoding (true of one synthetic
    generator).
    """

    VERSION = 1

    def __init__(self, source: FrameSource, path: str | Path, recipe: dict[str, Any]) -> None:
        self.path = Path(path)
        self.recipe = repr(sorted({**recipe, "cache_version": self.VERSION}.items()))
        if not self._load():
            self._render(source)

    def _load(self) -> bool:
        if not self.path.exists():
            return False
        with np.load(self.path, allow_pickle=False) as data:
            if str(data["recipe"]) != self.recipe:
                return False
            self.arrays = {k: data[k] for k in ("rgb", "aux", "label", "camera", "name")}
            self.aux_encoding = str(data["aux_encoding"])
        return True

    def _render(self, source: FrameSource) -> None:
        frames = [source.frame(i, 0) for i in range(len(source))]
        encodings = {f["aux_encoding"] for f in frames}
        if len(encodings) != 1:
            raise ValueError(f"cannot cache frames of several aux encodings {sorted(encodings)}")
        self.aux_encoding = encodings.pop()
        nan = (np.nan,) * 4
        self.arrays = {
            "rgb": np.stack([f["rgb"] for f in frames]),
            "aux": np.stack([f["aux"] for f in frames]),
            "label": np.stack([f["label"] for f in frames]),
            "camera": np.array(
                [
                    nan
                    if f.get("camera") is None
                    else (f["camera"].fx, f["camera"].fy, f["camera"].cx, f["camera"].cy)
                    for f in frames
                ],
                np.float64,
            ),
            "name": np.array([f["name"] for f in frames]),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader (another rank, a crash) never sees half a file.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            recipe=np.array(self.recipe),
            aux_encoding=np.array(self.aux_encoding),
            **self.arrays,
        )
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self.arrays["label"])

    def frame(self, index: int, epoch: int) -> Frame:
        a = self.arrays
        k = a["camera"][index]
        return {
            "rgb": a["rgb"][index],
            "aux": a["aux"][index],
            "aux_encoding": self.aux_encoding,
            "label": a["label"][index],
            "camera": None if np.isnan(k).any() else CameraIntrinsics(*map(float, k)),
            "name": str(a["name"][index]),
        }


# -- building the datasets of a config --------------------------------------------------------


def build_datasets(cfg: TrainConfig) -> tuple[SegDataset, dict[str, SegDataset], DataInfo]:
    """(training set, evaluation sets by name, DataInfo) for a config."""
    return _synthetic(cfg) if cfg.data.source == "synthetic" else _reader(cfg)


def _preprocess(cfg: TrainConfig, modality: str, defaults: dict[str, Any]) -> Preprocess:
    """The Preprocess spec of a config.

    Network size, aux modality and encoding, and AuxSpec fields from `data.aux_options` over the
    source's `defaults` (e.g. its thermal range).
    """
    d = cfg.data
    try:
        aux = AuxSpec(modality=modality, encoding=d.aux_encoding, **{**defaults, **d.aux_options})
    except TypeError as err:  # an unknown AuxSpec field
        raise ValueError(f"data.aux_options: {err}") from err
    return Preprocess(height=d.size[0], width=d.size[1], aux_spec=aux)


def _datasets(
    cfg: TrainConfig, train: FrameSource, evals: dict[str, FrameSource], preprocess: Preprocess
) -> tuple[SegDataset, dict[str, SegDataset]]:
    fused = cfg.model.arch != "adapnet"
    train_set = SegDataset(
        train,
        preprocess,
        cfg.seed,
        cfg.augment,
        cfg.modality_dropout if fused else None,
        crop=cfg.data.crop,
    )
    eval_sets = {name: SegDataset(src, preprocess) for name, src in evals.items()}
    if cfg.eval.no_aux and fused:
        first, source = next(iter(evals.items()))
        eval_sets[f"{first}_no_aux"] = SegDataset(source, preprocess, blank="aux")
    return train_set, eval_sets


def _synthetic(cfg: TrainConfig) -> tuple[SegDataset, dict[str, SegDataset], DataInfo]:
    d = cfg.data
    modality = d.aux or "depth"
    generator_aux = synthetic.GENERATOR_AUX[modality]
    h, w = d.size
    scenes = synthetic.SyntheticScenes(h, w, seed=d.scene_seed, benchmark=d.benchmark)
    train: FrameSource = SyntheticMix(
        scenes,
        synthetic.SPLITS["train"],
        d.train_samples,
        d.train_conditions,
        d.strength,
        generator_aux,
    )
    if d.cache is not None:
        train = CachedFrames(
            train,
            d.cache,
            {
                "size": list(d.size),
                "scene_seed": d.scene_seed,
                "train_samples": d.train_samples,
                # In order: the order of the shares drives each scene's draw.
                "train_conditions": list(d.train_conditions.items()),
                "strength": list(d.strength),
                "aux": generator_aux,
                **({} if d.benchmark == "v1" else {"benchmark": d.benchmark}),
            },
        )
    evals: dict[str, FrameSource] = {
        c: FixedFrames(
            synthetic.SyntheticDataset(
                "val",
                d.val_samples,
                h,
                w,
                d.scene_seed,
                generator_aux,
                conditions=(c,),
                strength=1.0,
                benchmark=d.benchmark,
            )
        )
        for c in d.eval_conditions
    }
    defaults = {"intensity_range": synthetic.THERMAL_RANGE} if generator_aux == "thermal" else {}
    preprocess = _preprocess(cfg, modality, defaults)
    info = DataInfo(tuple(synthetic.CLASSES), np.asarray(synthetic.PALETTE, np.uint8), preprocess)
    return (*_datasets(cfg, train, evals, preprocess), info)


#: Split arguments (training, evaluation) of the readers that take one.
READER_SPLITS = {
    "cityscapes": ("train", "val"),
    "freiburg_forest": ("train", "test"),
    "folder": ("train", "val"),
}


def _reader(cfg: TrainConfig) -> tuple[SegDataset, dict[str, SegDataset], DataInfo]:
    from ssma_ros.data.readers import READERS  # training-side only: OpenCV file I/O

    d = cfg.data
    reader_cls = READERS[d.source]
    train_kwargs, val_kwargs = {**d.reader, **d.train_reader}, {**d.reader, **d.val_reader}
    if d.source in READER_SPLITS:
        train_kwargs.setdefault("split", READER_SPLITS[d.source][0])
        val_kwargs.setdefault("split", READER_SPLITS[d.source][1])
    elif not d.val_reader:
        raise ValueError(
            f"data.val_reader: the {d.source} reader has no split argument; name the "
            "evaluation subset (e.g. {scene_list: val.txt} for sunrgbd, {scenes: [...]} for "
            "scannet)"
        )
    try:
        train, val = reader_cls(d.root, **train_kwargs), reader_cls(d.root, **val_kwargs)
    except TypeError as err:  # an argument the reader does not take
        raise ValueError(f"data.reader / train_reader / val_reader: {err}") from err
    modality = train[0]["aux_kind"]
    if d.aux is not None and d.aux != modality:
        raise ValueError(f"data.aux {d.aux!r}: the {d.source} reader serves aux as {modality!r}")
    classes = train.class_set
    if tuple(classes.void) != (0,):
        raise ValueError(
            f"class set {classes.name!r}: training needs exactly one void class, id 0 "
            f"(it has {list(classes.void)})"
        )
    keep = None
    if 0 < d.val_samples < len(val):
        keep = np.linspace(0, len(val) - 1, d.val_samples).round().astype(int).tolist()
    preprocess = _preprocess(cfg, modality, {})
    info = DataInfo(tuple(classes.names), classes.palette, preprocess)
    return (*_datasets(cfg, FixedFrames(train), {"val": FixedFrames(val, keep)}, preprocess), info)
