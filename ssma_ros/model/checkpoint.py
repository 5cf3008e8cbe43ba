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

Saving is atomic: the file is written beside its destination under a temporary name, flushed
and fsynced, then renamed over it, so an interrupted save (Ctrl-C, a full disk, a crash) leaves
the previous file whole. `keep_previous=True` also keeps the replaced file as `<name>.prev.pt`
(the trainer does so for last.pt), which a failed load then suggests.
"""

from __future__ import annotations

import os
import re
import zipfile
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


class CheckpointError(ValueError):
    """A file that is not a usable ssma_ros checkpoint; the message names it and what to do."""


def previous_path(path: str | Path) -> Path:
    """Where `keep_previous` keeps the file a save replaced: last.pt -> last.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    pruned: bool = False,
    keep_previous: bool = False,
    **meta: Any,
) -> Path:
    """Write `model` and free `meta` to `path`, atomically (see the module doc).

    `model` is built by `build_model`, possibly pruned with Torch-Pruning when `pruned=True`.
    Meta values must be weights_only-loadable: tensors, numbers, strings, None, and
    lists/tuples/dicts of those. `keep_previous`: keep the file this replaces as
    :func:`previous_path`.
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
    _write_atomically(path, record, keep_previous)
    return path


def _write_atomically(path: Path, record: dict[str, Any], keep_previous: bool) -> None:
    # Same folder, so the rename stays on one file system (and is atomic there).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            torch.save(record, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            # A second name for the old file, not a move: `path` exists at every instant, so a
            # crash between the two steps cannot leave a run without its last.pt.
            previous = previous_path(path)
            previous.unlink(missing_ok=True)
            os.link(path, previous)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # The renames themselves reach the disk only with the folder's entry.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _intact(path: Path) -> bool:
    """Whether a checkpoint file is a whole zip archive (torch.save's format), CRCs included."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _alternatives(path: Path) -> str:
    """Say which intact checkpoints beside `path` could stand in for it."""
    hints = []
    previous = previous_path(path)
    if previous.is_file() and _intact(previous):
        hints.append(f"the previous one, {previous}, is intact: move it to {path.name} to use it")
    best = path.with_name("best.pt")
    if best != path and best.is_file() and _intact(best):
        hints.append(f"{best} is intact (weights only: it cannot resume training)")
    return "; " + "; ".join(hints) if hints else ""


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (in eval mode) and return it with the free meta.

    arch, config and num_classes are available on the model itself. CheckpointError (a
    ValueError) names a file that is not a usable checkpoint, and an intact one beside it.
    """
    path = Path(path)
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated, not a zip, a refused pickle: name the file, not the zip
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}; truncated by an "
            f"interrupted save, or not a torch.save file?){_alternatives(path)}"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{path} is not an {FORMAT} checkpoint (format: {found!r})")
    model = build_model(
        record["arch"], record["config"], record["num_classes"], modality=record.get("modality")
    )
    if record["pruned"]:
        _load_pruned_state(model, record["model"])
    else:
        try:
            model.load_state_dict(_renamed(record["model"]))
        except RuntimeError as err:
            raise CheckpointError(
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
