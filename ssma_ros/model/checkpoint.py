"""The one checkpoint format of ssma_ros, loadable with torch.load(weights_only=True).

File = dict:
    format       "ssma_ros.checkpoint/1"
    arch         "adapnet" | "ssma" | "early" | "late"
    config       name in CONFIGS ("full", "lite") or ModelConfig.to_dict() for a custom config
    num_classes  int
    modality     "rgb" | "aux" (adapnet only: which input it was trained on)
    pruned       bool: `model` holds a structurally pruned network (see below)
    model        state dict (plain) or the pruned-module state (pruned)
    ...          free meta: classes, palette, preprocess spec, metrics, optimizer state, ...

Pruned networks (Torch-Pruning changes channel counts) cannot be loaded into a freshly built
model with `load_state_dict`. For them we store `torch_pruning.state_dict(model)`, which keeps
each module's tensors and attributes (in_channels, num_features, ...), and restore it with
`torch_pruning.load_state_dict` onto a freshly built model of the same arch and config. Raw,
that state also holds whole submodules and hook dicts, which weights_only loading rejects, so we
keep only parameters, buffers and plain-valued attributes of each module: the module tree itself
is rebuilt by `build_model`.

Files written before the decoder's deep-supervision heads were renamed (`decoder.aux_quarter`,
`decoder.aux_eighth` -> `decoder.side_quarter`, `decoder.side_eighth`) load unchanged: their
names are renamed on load (`LEGACY_NAMES`), in plain and pruned state alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssma_ros.model.builder import build_model
from ssma_ros.model.config import config_name

FORMAT = "ssma_ros.checkpoint/1"
RESERVED = ("format", "arch", "config", "num_classes", "modality", "pruned", "model")
_PLAIN = (bool, int, float, str, type(None))
#: Module/tensor names of older files -> today's ("aux" now only means the second modality).
LEGACY_NAMES = re.compile(r"(^|\.)decoder\.aux_(quarter|eighth)(?=\.|$)")


def save_checkpoint(path: str | Path, model: nn.Module, pruned: bool = False, **meta: Any) -> Path:
    """Write `model` and free `meta` to `path`.

    `model` is built by `build_model`, possibly pruned with Torch-Pruning (then `pruned=True`).
    Meta values must be weights_only-loadable: tensors, numbers, strings, None, and
    lists/tuples/dicts of those.
    """
    clash = sorted(set(meta) & set(RESERVED))
    if clash:
        raise ValueError(f"meta keys {clash} are reserved by the checkpoint format")
    for key, value in meta.items():
        _check_plain(value, key)
    name = config_name(model.config)
    record: dict[str, Any] = {
        "format": FORMAT,
        "arch": model.arch,
        "config": name if name is not None else model.config.to_dict(),
        "num_classes": int(model.num_classes),
        "pruned": bool(pruned),
        "model": _pruned_state(model) if pruned else model.state_dict(),
        **meta,
    }
    if model.arch == "adapnet":
        record["modality"] = model.modality
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (in eval mode) and return it with the free meta.

    arch, config and num_classes are available on the model itself.
    """
    record = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} is not an {FORMAT} checkpoint (format: {found!r})")
    model = build_model(
        record["arch"], record["config"], record["num_classes"], modality=record.get("modality")
    )
    if record["pruned"]:
        _load_pruned_state(model, record["model"])
    else:
        try:
            model.load_state_dict(_renamed(record["model"]))
        except RuntimeError as err:
            raise ValueError(
                f"{path}: weights do not fit arch {record['arch']!r} config {record['config']!r}; "
                f"a pruned model must be saved with pruned=True. {err}"
            ) from err
    model.to(map_location)
    meta = {k: v for k, v in record.items() if k not in RESERVED}
    return model.eval(), meta


def _pruned_state(model: nn.Module) -> dict[str, Any]:
    import torch_pruning as tp  # only needed for pruned models

    raw = tp.state_dict(model)
    modules = {}
    for name, state in raw["full_state_dict"].items():
        kept = {"_parameters": dict(state["_parameters"]), "_buffers": dict(state["_buffers"])}
        kept.update({k: v for k, v in state.items() if k != "training" and _is_plain(v)})
        modules[name] = kept
    # Instance attributes only: class attributes and properties are not state.
    attributes = {
        name: {k: v for k, v in attrs.items() if k in modules[name]}
        for name, attrs in raw["attributions"].items()
    }
    return {"full_state_dict": modules, "attributions": attributes}


def _renamed(by_name: dict[str, Any]) -> dict[str, Any]:
    return {LEGACY_NAMES.sub(r"\1decoder.side_\2", k): v for k, v in by_name.items()}


def _load_pruned_state(model: nn.Module, state: dict[str, Any]) -> None:
    import torch_pruning as tp

    state = {part: _renamed(state[part]) for part in ("full_state_dict", "attributions")}
    # Drop root attributes the model no longer has (AdapNetPP.in_channels, now input_channels).
    for part in state.values():
        if "" in part:
            part[""] = {
                k: v for k, v in part[""].items() if k.startswith("_") or hasattr(model, k)
            }
    names = {name for name, _ in model.named_modules()}
    saved = set(state["full_state_dict"])
    if names != saved:
        diff = sorted(names ^ saved)[:5]
        raise ValueError(f"pruned checkpoint does not match the model's module tree (e.g. {diff})")
    tp.load_state_dict(model, state)


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return False


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, _PLAIN):
                raise TypeError(f"checkpoint meta {where}: key {k!r} is not a str/number")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"checkpoint meta {where} is a {type(value).__name__}, which "
        "torch.load(weights_only=True) rejects; convert it to tensors, numbers, strings, "
        "lists or dicts (e.g. arr.tolist())"
    )
