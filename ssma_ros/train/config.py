"""Training configuration: nested dataclasses read from YAML.

They are validated with errors that name the key.

A config file mirrors `TrainConfig` (see config/train/smoke.yaml). Unknown keys, wrong types and
inconsistent combinations (e.g. stage "expert" with a fusion arch) are rejected before anything
is built, with the dotted key and, for typos, the closest known key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssma_ros.train.augment import AugmentConfig

STAGES = ("expert", "fusion", "finetune")
SOURCES = ("synthetic", "cityscapes", "freiburg_forest", "sunrgbd", "scannet", "synthia", "folder")
FUSION_ARCHS = ("ssma", "early", "late")
FREEZE = ("expert", "encoder")
AMP = ("off", "bf16", "fp16")


class ConfigError(ValueError):
    """A config that cannot be trained; the message names the key."""


#: What a warm SSMA fusion stage starts as: one expert, or the one with the better val mIoU.
WARM_CHOICES = ("rgb", "aux", "best")


@dataclass(frozen=True)
class ModelSection:
    arch: str = "ssma"  # adapnet | ssma | early | late
    config: str = "lite"  # full | lite
    modalities: tuple[str, ...] = ("rgb", "aux")  # adapnet: ("rgb",) or ("aux",)


@dataclass(frozen=True)
class DataSection:
    source: str = "synthetic"
    root: str | None = None  # dataset folder (not used by "synthetic")
    size: tuple[int, int] = (64, 80)  # network input (height, width), multiples of 16
    # Training only: a random (height, width) window, multiples of 16, cut at the pixel scale of
    # the frames encoded at `size` (the network is fully convolutional); evaluation always sees
    # whole frames at `size`. None = train on whole frames.
    crop: tuple[int, int] | None = None
    # The aux modality (data/preprocess: depth | infrared | nir | depth_gray); None = the
    # source's own (synthetic: depth; "infrared" there is its thermal channel).
    aux: str | None = None
    aux_encoding: str = (
        "jet"  # how aux becomes a 3-channel image: jet | hha | metric | intensity | evi
    )
    aux_options: dict[str, Any] = field(
        default_factory=dict
    )  # further AuxSpec fields, e.g. depth_range_m
    # Synthetic only: share of each condition among training samples, and the evaluation sets.
    train_conditions: dict[str, float] = field(
        default_factory=lambda: {"clear": 0.6, "fog": 0.1, "night": 0.1, "rain": 0.1, "glare": 0.1}
    )
    eval_conditions: tuple[str, ...] = ("clear", "fog", "night")
    strength: tuple[float, float] = (0.5, 1.0)  # range of adverse-condition strength in training
    train_samples: int = 2000  # synthetic: size of the training index range
    # Synthetic: an .npz of the training frames, rendered once (each scene under the condition it
    # draws in epoch 0) and reused while its recipe matches; None = render every sample, so a
    # scene's condition changes between epochs.
    cache: str | None = None
    # Synthetic: frames per evaluation condition. Readers: at most this many evaluation frames,
    # evenly spread over the evaluation split (0 = all).
    val_samples: int = 64
    scene_seed: int = 0  # synthetic generator seed (the world), distinct from the training seed
    benchmark: str = "v1"  # synthetic: the condition set (v1: RGB fails; v2: depth/thermal too)
    # Dataset readers (data/readers): keyword arguments for both splits (e.g. class_set, aux),
    # then per split. Cityscapes and Freiburg Forest default to their train/val (test) splits;
    # readers without a split argument need val_reader to name the evaluation subset
    # (e.g. {scene_list: val.txt} for sunrgbd, {scenes: [...]} for scannet).
    reader: dict[str, Any] = field(default_factory=dict)
    train_reader: dict[str, Any] = field(default_factory=dict)
    val_reader: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0


@dataclass(frozen=True)
class ModalityDropoutSection:
    """Modality dropout (fused models only): blank one input image of some training samples.

    Per training sample, blank the aux image with probability `aux`, else the RGB image with
    probability `rgb` (never both). Blanked inputs take the value the node feeds when a sensor is
    missing, so the model learns to work from one modality.
    """

    aux: float = 0.15
    rgb: float = 0.05


@dataclass(frozen=True)
class OptimSection:
    lr: float = 1e-3
    # Stage "fusion" from experts or a checkpoint: lr of the streams relative to `lr`.
    encoder_lr_scale: float = 0.1
    iterations: int = 1000
    batch_size: int = 8
    weight_decay: float = 0.0  # the released SSMA code applies none
    power: float = 0.9  # poly decay
    # What a "stream" is, for encoder_lr_scale and for freezing in stage "finetune":
    # "expert" (encoder + eASPP + skip projections, as the released code) or "encoder" (backbone).
    freeze: str = "expert"
    # Mixed precision of the training forward pass: "bf16" or "fp16" autocast (fp16 with a
    # GradScaler; CUDA only), "off" = fp32. The loss runs in fp32 inside autocast (cross-entropy
    # is on autocast's fp32 list); evaluation always runs in fp32, so metrics are unchanged.
    amp: str | bool = "off"  # YAML reads a bare `off` as false: taken as "off"
    channels_last: bool = False  # NHWC model and inputs: faster convolutions on tensor cores
    compile: bool = False  # torch.compile the training forward/backward (first steps compile)

    def __post_init__(self) -> None:
        if self.amp is False:
            object.__setattr__(self, "amp", "off")


@dataclass(frozen=True)
class EvalSection:
    interval: int = 500  # iterations between evaluations (and at the end)
    batch_size: int = 8
    plots: bool = True  # PNG curves, confusion matrices and prediction grids at each evaluation
    plot_samples: int = 4  # rows of the prediction grid
    no_aux: bool = (
        True  # fused models: also evaluate the first set with aux blanked, as "<name>_no_aux"
    )


@dataclass(frozen=True)
class InitSection:
    rgb: str | None = None  # stage "fusion": expert checkpoint for the rgb stream
    aux: str | None = None  # stage "fusion": expert checkpoint for the aux stream
    checkpoint: str | None = None  # start from these weights (same arch), e.g. stage "finetune"
    # ImageNet ResNet-50 weights on disk (timm resnetv2_50 or torchvision resnet50, .safetensors
    # or .pth) for the encoders of a model trained from scratch: one file for every encoder, or
    # {rgb: FILE, aux: FILE} (model/pretrained.py).
    backbone: str | dict[str, str] | None = None
    # Stage "fusion" of ssma from experts: start the fusion blocks and the decoder so that the
    # model reproduces one expert (rgb | aux | best: the expert with the higher validation mIoU
    # in its checkpoint); None = the usual random initialisation (cold).
    warm: str | None = None
    # With warm: the share (0..1) of the other stream in the fusion at step 0, mapped onto the
    # warm stream's features by a least-squares fit on training crops; 0 = that stream starts
    # with weight 0 (train/stages.py blend_other_stream).
    blend: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "fusion"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    modality_dropout: ModalityDropoutSection = field(default_factory=ModalityDropoutSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    init: InitSection = field(default_factory=InitSection)
    output_dir: str = "runs/train"
    seed: int = 0
    device: str = "cpu"  # cpu | cuda
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA/NCCL only)
    log_interval: int = 10  # iterations between CSV/TensorBoard rows
    progress: bool = True  # tqdm bar on rank 0
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def check(cfg: TrainConfig) -> None:
    """Cross-field rules; each error names the key to change."""
    m, d, o = cfg.model, cfg.data, cfg.optim
    _one_of("stage", cfg.stage, STAGES)
    _one_of("model.arch", m.arch, ("adapnet",) + FUSION_ARCHS)
    _one_of("model.config", m.config, ("lite", "full"))
    _one_of("data.source", d.source, SOURCES)
    _one_of("device", cfg.device, ("cpu", "cuda"))
    _one_of("optim.freeze", o.freeze, FREEZE)
    _one_of("optim.amp", o.amp, AMP)
    if o.amp == "fp16" and cfg.device != "cuda":
        raise ConfigError("optim.amp fp16 needs device 'cuda'; on a CPU use bf16")
    if m.arch == "adapnet":
        if len(m.modalities) != 1 or m.modalities[0] not in ("rgb", "aux"):
            raise ConfigError(
                f"model.modalities: adapnet takes one modality, ['rgb'] or ['aux'], "
                f"got {list(m.modalities)}"
            )
        if cfg.stage != "expert":
            raise ConfigError(
                f"stage {cfg.stage!r} fuses two streams; use stage 'expert' for adapnet"
            )
    else:
        if tuple(m.modalities) != ("rgb", "aux"):
            raise ConfigError(
                f"model.modalities: {m.arch} takes ['rgb', 'aux'], got {list(m.modalities)}"
            )
        if cfg.stage == "expert":
            raise ConfigError(f"stage 'expert' trains a unimodal adapnet, not {m.arch!r}")
    if (cfg.init.rgb is None) != (cfg.init.aux is None):
        raise ConfigError("init.rgb and init.aux: give both expert checkpoints or neither")
    if cfg.init.rgb is not None:
        if cfg.stage != "fusion":
            raise ConfigError(
                "init.rgb/init.aux (expert checkpoints) only apply to stage 'fusion'"
            )
        if cfg.init.checkpoint is not None:
            raise ConfigError("give either init.checkpoint or init.rgb + init.aux, not both")
    _check_backbone(cfg)
    if cfg.init.warm is not None:
        _one_of("init.warm", cfg.init.warm, WARM_CHOICES)
        if cfg.model.arch != "ssma" or cfg.init.rgb is None:
            raise ConfigError(
                "init.warm: only an ssma fusion stage that starts from experts (init.rgb, "
                "init.aux) can start warm"
            )
    if not 0.0 <= cfg.init.blend < 1.0 or (cfg.init.blend and cfg.init.warm is None):
        raise ConfigError(f"init.blend: a share in [0, 1) with init.warm, got {cfg.init.blend}")
    if cfg.stage == "finetune" and cfg.init.checkpoint is None:
        raise ConfigError("stage 'finetune' needs init.checkpoint (the stage 'fusion' result)")
    h, w = d.size
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise ConfigError(
            f"data.size {list(d.size)}: height and width must be positive multiples of 16"
        )
    if d.crop is not None:
        ch, cw = d.crop
        if ch <= 0 or cw <= 0 or ch % 16 or cw % 16 or ch > h or cw > w:
            raise ConfigError(
                f"data.crop {list(d.crop)}: height and width must be positive multiples "
                f"of 16 and fit in data.size {list(d.size)}"
            )
    if d.cache is not None and d.source != "synthetic":
        raise ConfigError(
            f"data.cache: only synthetic frames are cached; {d.source!r} reads files already"
        )
    if d.source == "synthetic":
        if d.aux is not None:
            _one_of("data.aux", d.aux, ("depth", "infrared"))
        from ssma_ros.data.synthetic import BENCHMARKS  # numpy + OpenCV: only when needed

        _one_of("data.benchmark", d.benchmark, tuple(BENCHMARKS))
        known = BENCHMARKS[d.benchmark]
        unknown = sorted(set(d.train_conditions) - set(known)) + sorted(
            set(d.eval_conditions) - set(known)
        )
        if unknown:
            raise ConfigError(f"data: conditions {unknown} are not in benchmark {d.benchmark}")
        if (
            not d.train_conditions
            or any(v < 0 for v in d.train_conditions.values())
            or sum(d.train_conditions.values()) <= 0
        ):
            raise ConfigError(
                "data.train_conditions: give non-negative shares with a positive sum"
            )
        if not d.eval_conditions:
            raise ConfigError("data.eval_conditions: give at least one condition")
        if d.train_samples <= 0 or d.val_samples <= 0:
            raise ConfigError(
                "data.train_samples and data.val_samples must be positive for synthetic data"
            )
    else:
        if d.root is None:
            raise ConfigError(
                f"data.root: source {d.source!r} reads a dataset folder; set its path"
            )
        if d.val_samples < 0:
            raise ConfigError("data.val_samples must be >= 0 for a dataset reader (0 = all)")
    lo, hi = d.strength
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"data.strength {list(d.strength)}: need 0 <= low <= high <= 1")
    p_aux, p_rgb = cfg.modality_dropout.aux, cfg.modality_dropout.rgb
    if not (0 <= p_aux <= 1 and 0 <= p_rgb <= 1 and p_aux + p_rgb <= 1):
        raise ConfigError(
            "modality_dropout: aux and rgb must be probabilities with aux + rgb <= 1"
        )
    for key, value in (
        ("optim.iterations", o.iterations),
        ("optim.batch_size", o.batch_size),
        ("eval.interval", cfg.eval.interval),
        ("eval.batch_size", cfg.eval.batch_size),
        ("log_interval", cfg.log_interval),
    ):
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if o.lr <= 0 or not 0 <= o.encoder_lr_scale <= 1 or o.weight_decay < 0 or o.power <= 0:
        raise ConfigError(
            "optim: need lr > 0, 0 <= encoder_lr_scale <= 1, weight_decay >= 0, power > 0"
        )
    if cfg.sync_bn and cfg.device != "cuda":
        raise ConfigError("sync_bn needs device 'cuda' (SyncBatchNorm runs on NCCL)")
    if d.num_workers < 0:
        raise ConfigError("data.num_workers must be >= 0")


def _check_backbone(cfg: TrainConfig) -> None:
    init, m = cfg.init, cfg.model
    if init.backbone is None:
        return
    if init.checkpoint is not None or init.rgb is not None:
        raise ConfigError(
            "init.backbone starts encoders from ImageNet; init.checkpoint and init.rgb/aux "
            "replace them with trained ones: give one or the other"
        )
    if m.arch == "early":
        raise ConfigError(
            "init.backbone: early fusion's one encoder sees stacked rgb + aux channels, which "
            "no ImageNet network has; use adapnet, ssma or late"
        )
    if m.config != "full":
        raise ConfigError(
            f"init.backbone: ImageNet ResNet-50 weights fit model.config 'full', not {m.config!r}"
        )
    if isinstance(init.backbone, dict):
        streams = set(m.modalities)
        unknown = sorted(set(init.backbone) - streams)
        if unknown or not init.backbone:
            raise ConfigError(
                f"init.backbone: name the encoders of {sorted(streams)}, "
                f"got {sorted(init.backbone)}"
            )


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively: YAML/JSON friendly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the type hint `hint` (and build nested dataclasses)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _build(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {hint}"
        )
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {
            _convert(k, key_type, key): _convert(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for name in data:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {known}"
            raise ConfigError(f"unknown key '{prefix}{name}'{hint}")
    kwargs = {name: _convert(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # e.g. AugmentConfig's own range checks
        raise ConfigError(str(err)) from err


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one `dotted.key=value` (value parsed as YAML) to a raw config mapping in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value, e.g. optim.lr=0.0005")
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: '{part}' is not a section")
    node[parts[-1]] = yaml.safe_load(text)


def from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    data = copy.deepcopy(data or {})
    for override in overrides:
        apply_override(data, override)
    return _build(TrainConfig, data)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read and validate a YAML config; `overrides` are `dotted.key=value` strings."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err}") from err
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return from_dict(data or {}, overrides)
