"""The model bundle: the folder that carries a trained network from the workstation to the robot.

A bundle is `model.onnx` + `bundle.json` (+ optional `model_fp16.onnx`, `model.pt`, `engines/`).
`bundle.json` holds everything the node needs to serve the model exactly as it was trained.
This module is import-light (no torch, no onnxruntime) so every backend and the node can use it;
only `write_bundle` imports `onnx`, to read the input/output shapes from the exported file.

Long because: the bundle contract is one schema, written and checked in one place: the writer,
the loader, the validation of every field and the contract embedded in model.onnx must change
together when the contract does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

FORMAT = "ssma_ros.bundle/1"
META_FILE = "bundle.json"
ONNX_FILE = "model.onnx"
ONNX_FP16_FILE = "model_fp16.onnx"
CHECKPOINT_FILE = "model.pt"
ENGINES_DIR = "engines"
KNOWN_FILES = (ONNX_FILE, ONNX_FP16_FILE, CHECKPOINT_FILE)
OUTPUT_NAME = "logits"
DTYPES = ("float32", "float16")

#: model.onnx's metadata_props key holding the serving contract: the bundle.json fields it was
#: exported with (CONTRACT_FIELDS) and the sha256 of the bundle's other files, as JSON.
CONTRACT_KEY = "ssma_ros.serving_contract"
CONTRACT_FIELDS = ("inputs", "outputs", "preprocess", "classes", "palette", "void_indices")
#: Keys every preprocess section has (ssma_ros.data.preprocess.Preprocess.to_dict).
PREPROCESS_KEYS = ("version", "input_size", "rgb_order", "rgb_mean", "rgb_std")

REEXPORT = "re-export the bundle with ssma-export"
RECOPY = "re-copy the bundle or re-export it with ssma-export"


class BundleError(ValueError):
    """A bundle that cannot be served; the message names the bad field or file and what to do."""


@dataclass(frozen=True)
class TensorSpec:
    """One network input or output: its name, static shape (N, C, H, W) and element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Bundle:
    """A validated bundle folder. `meta` is the parsed bundle.json, the fields are views on it."""

    path: Path
    name: str
    arch: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess: dict[str, Any]
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    void_indices: tuple[int, ...]
    files: dict[str, str]  # file name -> sha256
    opset: int
    meta: dict[str, Any] = field(repr=False)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def onnx_fp16_path(self) -> Path | None:
        return self.path / ONNX_FP16_FILE if ONNX_FP16_FILE in self.files else None

    @property
    def checkpoint_path(self) -> Path | None:
        return self.path / CHECKPOINT_FILE if CHECKPOINT_FILE in self.files else None

    @property
    def engines_dir(self) -> Path:
        return self.path / ENGINES_DIR

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def height(self) -> int:
        return self.inputs[0].shape[2]

    @property
    def width(self) -> int:
        return self.inputs[0].shape[3]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Validation: hand-written so that each message names the field and says what to do.


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_problems(meta: Mapping[str, Any], key: str) -> list[str]:
    entries = meta.get(key)
    if not isinstance(entries, list) or not entries:
        return [f"{key} must be a non-empty list of {{name, shape, dtype}}, got {entries!r}"]
    problems = []
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object {{name, shape, dtype}}, got {entry!r}")
            continue
        shape = entry.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or not all(_is_int(d) and d > 0 for d in shape)
        ):
            problems.append(
                f"{where}.shape must be 4 positive integers (N, C, H, W), got {shape!r}"
            )
        if entry.get("dtype") not in DTYPES:
            problems.append(
                f"{where}.dtype must be one of {list(DTYPES)}, got {entry.get('dtype')!r}"
            )
        if not isinstance(entry.get("name"), str):
            problems.append(f"{where}.name must be a string, got {entry.get('name')!r}")
    return problems


def _io_problems(meta: Mapping[str, Any]) -> list[str]:
    problems = _tensor_problems(meta, "inputs") + _tensor_problems(meta, "outputs")
    if problems:
        return problems
    names = [e["name"] for e in meta["inputs"]]
    if names not in (["rgb", "aux"], ["rgb"], ["aux"]):
        problems.append(
            f"inputs must be named ['rgb', 'aux'] (in that order), ['rgb'] or ['aux'], got {names}"
        )
    sizes = {tuple(e["shape"][2:]) for e in meta["inputs"]}
    if len(sizes) != 1:
        problems.append(f"inputs must share one height and width, got {sorted(sizes)}")
    if [e["name"] for e in meta["outputs"]] != [OUTPUT_NAME]:
        problems.append(
            f"outputs must be exactly one tensor named {OUTPUT_NAME!r}, "
            f"got {[e['name'] for e in meta['outputs']]}"
        )
    elif isinstance(meta.get("classes"), list):
        _, c, h, w = meta["outputs"][0]["shape"]
        if c != len(meta["classes"]):
            problems.append(
                f"outputs[0].shape has {c} channels but classes has {len(meta['classes'])} names"
            )
        if (h, w) not in sizes:
            problems.append(
                f"outputs[0].shape is {h}x{w} but the inputs are {sorted(sizes)[0]}: "
                "logits must be at the network input resolution"
            )
    # The preprocess spec is opaque here, except for the one fact both sides state: the input size.
    preprocess = meta.get("preprocess")
    size = preprocess.get("input_size") if isinstance(preprocess, dict) else None
    if isinstance(size, list) and len(sizes) == 1 and tuple(size) not in sizes:
        problems.append(
            f"preprocess.input_size is {size} but the network inputs are "
            f"{list(sorted(sizes)[0])}: the node would feed frames of the wrong size"
        )
    return problems


def _preprocess_problems(meta: Mapping[str, Any]) -> list[str]:
    """Check the preprocess section with the very parser the node encodes frames with."""
    preprocess = meta["preprocess"]
    missing = [k for k in PREPROCESS_KEYS if k not in preprocess]
    if missing:
        return [f"preprocess.{k} is missing" for k in missing]
    size = preprocess["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        return [f"preprocess.input_size must be [height, width] (positive integers), got {size!r}"]
    from ssma_ros.data.preprocess import Preprocess  # numpy and cv2: only once there is a spec

    try:
        Preprocess.from_dict(preprocess)
    except (TypeError, ValueError, KeyError) as exc:
        return [f"preprocess: {exc}"]
    problems = []
    aux = preprocess.get("aux")
    names = [e.get("name") for e in meta.get("inputs") or [] if isinstance(e, dict)]
    if "aux" in names and not isinstance(aux, dict):
        problems.append(
            f"inputs include 'aux' but preprocess.aux is {aux!r}: the node cannot encode it"
        )
    if "aux" not in names and aux is not None:
        problems.append("preprocess.aux is set but the network has no 'aux' input")
    return problems


def _class_problems(meta: Mapping[str, Any]) -> list[str]:
    classes, palette, void = meta.get("classes"), meta.get("palette"), meta.get("void_indices")
    problems = []
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c for c in classes)
    ):
        return [f"classes must be a non-empty list of class names, got {classes!r}"]
    if len(set(classes)) != len(classes):
        problems.append(f"classes has duplicate names: {classes}")
    if len(classes) > 256:
        problems.append(f"classes has {len(classes)} names; the mono8 mask holds at most 256")
    if not isinstance(palette, list) or not all(
        isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)
        for c in palette
    ):
        problems.append(
            f"palette must be a list of [r, g, b] colours (integers 0-255), got {palette!r}"
        )
    elif len(palette) != len(classes):
        problems.append(f"classes has {len(classes)} names but palette has {len(palette)} colours")
    if not isinstance(void, list) or not all(_is_int(v) and 0 <= v < len(classes) for v in void):
        problems.append(
            f"void_indices must be a list of class indices in [0, {len(classes) - 1}], "
            f"got {void!r}"
        )
    return problems


def _file_problems(meta: Mapping[str, Any]) -> list[str]:
    files = meta.get("files")
    if not isinstance(files, dict) or ONNX_FILE not in files:
        return [f"files must be an object that lists {ONNX_FILE} with its sha256, got {files!r}"]
    problems = []
    for name, entry in files.items():
        if name not in KNOWN_FILES:  # also stops paths such as "../x" from leaving the folder
            problems.append(f"files lists {name!r}; a bundle holds only {list(KNOWN_FILES)}")
        elif not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            and _is_int(entry.get("bytes"))
        ):
            problems.append(
                f"files[{name!r}] must be {{sha256: 64 hex digits, bytes: integer}}, got {entry!r}"
            )
    return problems


def meta_problems(meta: Any) -> list[str]:
    """Every problem of a parsed bundle.json, each naming its field; empty when it is valid."""
    if not isinstance(meta, dict):
        return [f"the top level must be a JSON object, got {type(meta).__name__}"]
    if meta.get("format") != FORMAT:
        return [
            f"format is {meta.get('format')!r} but this ssma_ros reads {FORMAT!r} "
            "(update ssma_ros, or export the bundle with this version)"
        ]
    problems = []
    for key in ("name", "arch"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            problems.append(f"{key} must be a non-empty string, got {meta.get(key)!r}")
    if not isinstance(meta.get("preprocess"), dict) or not meta["preprocess"]:
        problems.append(
            "preprocess must be the modality encoding and normalisation spec "
            f"(an object from ssma_ros.data.preprocess), got {meta.get('preprocess')!r}"
        )
    else:
        problems += _preprocess_problems(meta)
    for key in ("training", "metrics", "exporter"):
        if not isinstance(meta.get(key), dict):
            problems.append(f"{key} must be an object, got {meta.get(key)!r}")
    if not _is_int(meta.get("opset")) or meta["opset"] < 11:
        problems.append(f"opset must be an integer >= 11, got {meta.get('opset')!r}")
    return problems + _io_problems(meta) + _class_problems(meta) + _file_problems(meta)


def _raise_if_invalid(meta: Any, where: str) -> None:
    problems = meta_problems(meta)
    if len(problems) == 1:
        raise BundleError(f"{where}: {problems[0]}; {REEXPORT}")
    if problems:
        raise BundleError(
            f"{where} has {len(problems)} problems ({REEXPORT}):\n  - " + "\n  - ".join(problems)
        )


# ---------------------------------------------------------------------------------------------


def _load_onnx(onnx_path: Path) -> Any:
    """Load the ModelProto of an ONNX file (weights embedded); BundleError if it is not one."""
    try:
        import onnx
    except ImportError as exc:
        raise BundleError(
            f"onnx not importable ({exc}): it reads {onnx_path.name}'s inputs and serving "
            "contract; pip install onnx"
        ) from exc
    try:
        return onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a truncated or foreign file
        raise BundleError(
            f"{onnx_path} is not a readable ONNX model ({type(exc).__name__}: {exc}); {RECOPY}"
        ) from exc


def _onnx_io(model: Any, onnx_path: Path) -> tuple[list[TensorSpec], list[TensorSpec], int]:
    from onnx import helper

    initializers = {init.name for init in model.graph.initializer}

    def spec(value: Any) -> TensorSpec:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise BundleError(
                f"{onnx_path.name}: {value.name} has a dynamic shape "
                f"{[d.dim_param or d.dim_value for d in dims]}; export with a fixed "
                "height and width (the node and TensorRT engines use static shapes)"
            )
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        return TensorSpec(value.name, tuple(d.dim_value for d in dims), dtype)

    inputs = [spec(v) for v in model.graph.input if v.name not in initializers]
    outputs = [spec(v) for v in model.graph.output]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return inputs, outputs, opset


def read_onnx_io(onnx_path: str | Path) -> tuple[list[TensorSpec], list[TensorSpec], int]:
    """Read the inputs, outputs and default-domain opset from the ONNX file itself."""
    onnx_path = Path(onnx_path)
    return _onnx_io(_load_onnx(onnx_path), onnx_path)


def serving_contract(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return what model.onnx is exported with: the serving fields and the other files' hashes."""
    contract = {key: meta[key] for key in CONTRACT_FIELDS}
    contract["files"] = {n: e["sha256"] for n, e in meta["files"].items() if n != ONNX_FILE}
    return contract


def _embed_contract(onnx_path: Path, contract: Mapping[str, Any]) -> None:
    """Write the serving contract into the ONNX file's metadata_props (the graph is untouched)."""
    import onnx

    model = _load_onnx(onnx_path)
    props = {p.key: p.value for p in model.metadata_props}
    props[CONTRACT_KEY] = json.dumps(contract, sort_keys=True)
    onnx.helper.set_model_props(model, props)
    onnx.save_model(model, str(onnx_path))


def _first_difference(ours: Any, theirs: Any, where: str) -> tuple[str, Any, Any] | None:
    """Return the first field path where two parsed JSON values differ, with both values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours or key not in theirs:
                return f"{where}.{key}", ours.get(key, "(absent)"), theirs.get(key, "(absent)")
            found = _first_difference(ours[key], theirs[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if ours == theirs and type(ours) is type(theirs) else (where, ours, theirs)


def _check_against_onnx(meta: Mapping[str, Any], model: Any, folder: Path) -> None:
    """bundle.json must describe the model.onnx it ships: its tensors, then its contract."""
    where = f"{folder / META_FILE}"
    inputs, outputs, opset = _onnx_io(model, folder / ONNX_FILE)
    for key, actual in (("inputs", inputs), ("outputs", outputs)):
        found = _first_difference(meta[key], [t.to_dict() for t in actual], key)
        if found:
            raise BundleError(
                f"{where}: {found[0]} is {found[1]!r} but {ONNX_FILE} has {found[2]!r}; "
                f"bundle.json does not describe this model; {RECOPY}"
            )
    if meta["opset"] != opset:
        raise BundleError(
            f"{where}: opset is {meta['opset']} but {ONNX_FILE} uses opset {opset}; {RECOPY}"
        )
    try:
        props = {p.key: p.value for p in model.metadata_props}
    except ValueError as exc:  # protobuf decodes strings lazily: UnicodeDecodeError here
        raise BundleError(f"{folder / ONNX_FILE} has unreadable metadata ({exc}); {RECOPY}")
    if CONTRACT_KEY not in props:
        raise BundleError(
            f"{folder / ONNX_FILE} carries no serving contract (metadata {CONTRACT_KEY!r}), so "
            f"{META_FILE} cannot be checked against it (exported by an older ssma_ros?); "
            f"{REEXPORT}"
        )
    try:
        contract = json.loads(props[CONTRACT_KEY])
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder / ONNX_FILE}: unreadable serving contract ({exc}); {REEXPORT}")
    found = _first_difference(serving_contract(meta), contract, "")
    if found:
        field_path = found[0].lstrip(".")
        if field_path.startswith("files."):
            field_path = f"files.{field_path[len('files.') :]}.sha256"
        raise BundleError(
            f"{where}: {field_path} is {found[1]!r} but {ONNX_FILE} was exported with "
            f"{found[2]!r}: bundle.json was edited after export; {RECOPY}"
        )


def _exporter_versions() -> dict[str, str]:
    from importlib import metadata

    import ssma_ros

    versions = {"ssma_ros": ssma_ros.__version__}
    for package in ("torch", "onnx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def _dumps(meta: Mapping[str, Any]) -> str:
    """Indented JSON for people to read.

    Number lists (shapes, colours, means) are kept on one line.
    """
    text = json.dumps(meta, indent=2)
    return (
        re.sub(
            r"\[\s*([-+0-9.eE,\s]+?)\s*\]",
            lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
            text,
        )
        + "\n"
    )


def write_bundle(
    out_dir: str | Path,
    onnx_path: str | Path,
    *,
    name: str,
    arch: str,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    preprocess: Mapping[str, Any],
    void_indices: Sequence[int] = (),
    onnx_fp16_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Assemble a bundle folder from exported files and write its bundle.json; returns the folder.

    Inputs, outputs and opset come from `onnx_path` itself, so bundle.json cannot disagree with the
    network. The result is loaded back (hashes included) before returning.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = {
        ONNX_FILE: onnx_path,
        ONNX_FP16_FILE: onnx_fp16_path,
        CHECKPOINT_FILE: checkpoint_path,
    }
    files: dict[str, dict[str, Any]] = {}
    for file_name, source in sources.items():
        target = out / file_name
        if source is None:
            target.unlink(missing_ok=True)  # a stale file from an earlier export must not linger
            continue
        source = Path(source)
        if source.resolve() != target.resolve():
            target.unlink(missing_ok=True)  # never write through a link left in its place
            shutil.copyfile(source, target)
        files[file_name] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}

    inputs, outputs, opset = read_onnx_io(out / ONNX_FILE)
    meta = {
        "format": FORMAT,
        "name": name,
        "arch": arch,
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "preprocess": dict(preprocess),
        "classes": list(classes),
        "palette": [[int(v) for v in colour] for colour in palette],
        "void_indices": [int(v) for v in void_indices],
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "files": files,
        "exporter": _exporter_versions(),
        "opset": opset,
    }
    _raise_if_invalid(meta, f"{META_FILE} for {out}")
    # model.onnx carries the contract, so bundle.json cannot be edited without failing the load.
    _embed_contract(out / ONNX_FILE, serving_contract(meta))
    onnx_file = out / ONNX_FILE
    files[ONNX_FILE] = {"sha256": sha256_file(onnx_file), "bytes": onnx_file.stat().st_size}
    (out / META_FILE).write_text(_dumps(meta))
    load_bundle(out)
    return out


def _check_inside(folder: Path, name: str) -> None:
    """Refuse a bundle file that is a link to somewhere outside the (resolved) bundle folder."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise BundleError(
            f"{name} in bundle {folder} links to {target}, outside the bundle folder; a bundle "
            "is self-contained: copy the file into it (links out are refused)"
        )


def load_bundle(path: str | Path, verify_hash: bool = True) -> Bundle:
    """Read and validate a bundle folder (or its bundle.json).

    Every file listed in bundle.json must be present with its recorded size, inside the folder
    (links out are refused); with `verify_hash` its sha256 must match too (a wrong model is worse
    than no model). bundle.json must then describe model.onnx: its inputs, outputs and opset,
    and the serving contract (CONTRACT_FIELDS and the other files' hashes) embedded in it at
    export, so an edited bundle.json is refused with the field that differs. Every refusal is a
    BundleError.
    """
    folder = Path(path)
    if folder.name == META_FILE:
        folder = folder.parent
    if not folder.is_dir():
        raise BundleError(
            f"bundle folder {folder} not found; a bundle is a folder with "
            f"{ONNX_FILE} and {META_FILE} (make one with ssma-export)"
        )
    folder = folder.resolve()
    meta_path = folder / META_FILE
    for required in (META_FILE, ONNX_FILE):
        if not (folder / required).is_file():
            raise BundleError(
                f"{required} not found in bundle {folder}; a bundle needs "
                f"{ONNX_FILE} and {META_FILE}; {RECOPY}"
            )
        _check_inside(folder, required)
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); {RECOPY}") from exc
    _raise_if_invalid(meta, str(meta_path))

    for file_name, entry in meta["files"].items():
        file_path = folder / file_name
        if not file_path.is_file():
            raise BundleError(
                f"{file_name} not found in bundle {folder} but {META_FILE} lists it; {RECOPY}"
            )
        _check_inside(folder, file_name)
        size = file_path.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(
                f"{file_name} is {size} bytes but {META_FILE} records {entry['bytes']}; "
                f"the file was modified or truncated; {RECOPY}"
            )
        if verify_hash:
            actual = sha256_file(file_path)
            if actual != entry["sha256"]:
                raise BundleError(
                    f"{file_name} sha256 mismatch: expected {entry['sha256']}, got {actual}; "
                    f"the file was modified or truncated; {RECOPY}"
                )

    # Before any backend allocates anything from these shapes.
    _check_against_onnx(meta, _load_onnx(folder / ONNX_FILE), folder)

    return Bundle(
        path=folder,
        name=meta["name"],
        arch=meta["arch"],
        inputs=tuple(TensorSpec(e["name"], tuple(e["shape"]), e["dtype"]) for e in meta["inputs"]),
        outputs=tuple(
            TensorSpec(e["name"], tuple(e["shape"]), e["dtype"]) for e in meta["outputs"]
        ),
        preprocess=meta["preprocess"],
        classes=tuple(meta["classes"]),
        palette=tuple(tuple(c) for c in meta["palette"]),
        void_indices=tuple(meta["void_indices"]),
        files={n: e["sha256"] for n, e in meta["files"].items()},
        opset=meta["opset"],
        meta=meta,
    )
