"""The model bundle.

A write/load round trip on a really exported ONNX, and refusals that name their cause.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import ssma_ros
from ssma_ros.bundle import (
    CONTRACT_KEY,
    FORMAT,
    BundleError,
    load_bundle,
    sha256_file,
    write_bundle,
)
from ssma_ros.data.preprocess import Preprocess

HEIGHT, WIDTH = 16, 24
CLASSES = ["void", "ground", "wall", "person"]
PALETTE = [[0, 0, 0], [128, 64, 128], [70, 70, 70], [220, 20, 60]]
PREPROCESS = Preprocess(HEIGHT, WIDTH).to_dict()  # opaque to the bundle but for its input_size


class TinyNet(nn.Module):
    """rgb (3 channels) + aux (1 channel) -> logits for 4 classes at the input resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb = nn.Conv2d(3, 6, 3, padding=1)
        self.aux = nn.Conv2d(1, 6, 3, padding=1)
        self.head = nn.Conv2d(12, len(CLASSES), 1)

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([torch.relu(self.rgb(rgb)), torch.sigmoid(self.aux(aux))], 1))


def export_tiny(path: Path, fp16: bool = False) -> tuple[TinyNet, Path]:
    torch.manual_seed(0)
    model = TinyNet().eval()
    dtype = torch.float16 if fp16 else torch.float32
    net = copy.deepcopy(model).to(dtype)
    args = (
        torch.zeros(1, 3, HEIGHT, WIDTH, dtype=dtype),
        torch.zeros(1, 1, HEIGHT, WIDTH, dtype=dtype),
    )
    torch.onnx.export(
        net,
        args,
        str(path),
        dynamo=True,
        opset_version=18,
        input_names=["rgb", "aux"],
        output_names=["logits"],
        external_data=False,
        verbose=False,
    )
    return model, path


def make_bundle(out: Path, onnx_path: Path, **overrides) -> Path:
    kwargs = dict(
        name="tiny",
        arch="tiny",
        classes=CLASSES,
        palette=PALETTE,
        void_indices=[0],
        preprocess=PREPROCESS,
        training={"dataset": "synthetic", "seed": 3},
        metrics={"miou": 0.42},
    )
    kwargs.update(overrides)
    return write_bundle(out, onnx_path, **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyNet, Path]:
    return export_tiny(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture
def bundle_dir(tmp_path: Path, exported: tuple[TinyNet, Path]) -> Path:
    return make_bundle(tmp_path / "bundle", exported[1])


@contextmanager
def bundle_meta(bundle_dir: Path) -> Iterator[dict]:
    """bundle.json as a dict, written back after the `with` body."""
    path = bundle_dir / "bundle.json"
    meta = json.loads(path.read_text())
    yield meta
    path.write_text(json.dumps(meta))


def edit_meta(bundle_dir: Path, **changes) -> None:
    with bundle_meta(bundle_dir) as meta:
        meta.update(changes)


def test_round_trip_reads_io_from_the_onnx_and_hashes_it(
    bundle_dir: Path, exported: tuple[TinyNet, Path]
) -> None:
    bundle = load_bundle(bundle_dir)
    assert bundle.path == bundle_dir.resolve()
    assert (bundle.name, bundle.arch, bundle.opset) == ("tiny", "tiny", 18)
    assert [(s.name, s.shape, s.dtype) for s in bundle.inputs] == [
        ("rgb", (1, 3, HEIGHT, WIDTH), "float32"),
        ("aux", (1, 1, HEIGHT, WIDTH), "float32"),
    ]
    assert [(s.name, s.shape) for s in bundle.outputs] == [
        ("logits", (1, len(CLASSES), HEIGHT, WIDTH))
    ]
    assert (bundle.height, bundle.width, bundle.num_classes) == (HEIGHT, WIDTH, len(CLASSES))
    assert bundle.classes == tuple(CLASSES)
    assert bundle.palette == tuple(tuple(c) for c in PALETTE)
    assert bundle.void_indices == (0,)
    assert bundle.preprocess == PREPROCESS
    assert bundle.files == {"model.onnx": sha256_file(bundle.onnx_path)}
    shipped, source = onnx.load(str(bundle.onnx_path)), onnx.load(str(exported[1]))
    assert shipped.graph == source.graph  # the same network: only its metadata grew
    contract = json.loads({p.key: p.value for p in shipped.metadata_props}[CONTRACT_KEY])
    assert contract == {
        "inputs": [
            {"name": "rgb", "shape": [1, 3, HEIGHT, WIDTH], "dtype": "float32"},
            {"name": "aux", "shape": [1, 1, HEIGHT, WIDTH], "dtype": "float32"},
        ],
        "outputs": [
            {"name": "logits", "shape": [1, len(CLASSES), HEIGHT, WIDTH], "dtype": "float32"}
        ],
        "preprocess": PREPROCESS,
        "classes": CLASSES,
        "palette": PALETTE,
        "void_indices": [0],
        "files": {},
    }
    assert bundle.onnx_fp16_path is None and bundle.checkpoint_path is None
    assert bundle.engines_dir == bundle.path / "engines"
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta["format"] == FORMAT
    assert meta["exporter"]["ssma_ros"] == ssma_ros.__version__
    assert meta["exporter"]["onnx"] == onnx.__version__
    assert meta["training"] == {"dataset": "synthetic", "seed": 3} and meta["metrics"] == {
        "miou": 0.42
    }
    assert (
        load_bundle(bundle_dir / "bundle.json").name == "tiny"
    )  # the file works as well as the folder


def test_optional_files_are_listed_hashed_and_dropped_when_not_exported(
    tmp_path: Path, exported: tuple[TinyNet, Path]
) -> None:
    _, fp16 = export_tiny(tmp_path / "tiny_fp16.onnx", fp16=True)
    checkpoint = tmp_path / "weights.pt"
    torch.save(exported[0].state_dict(), checkpoint)
    out = make_bundle(tmp_path / "b", exported[1], onnx_fp16_path=fp16, checkpoint_path=checkpoint)
    bundle = load_bundle(out)
    assert set(bundle.files) == {"model.onnx", "model_fp16.onnx", "model.pt"}
    assert bundle.files["model_fp16.onnx"] == sha256_file(fp16)
    assert bundle.onnx_fp16_path == out.resolve() / "model_fp16.onnx"
    assert bundle.checkpoint_path.read_bytes() == checkpoint.read_bytes()

    make_bundle(out, exported[1])  # re-export into the same folder without the optional files
    assert not (out / "model_fp16.onnx").exists() and not (out / "model.pt").exists()
    assert set(load_bundle(out).files) == {"model.onnx"}


def test_modified_onnx_is_refused_with_both_hashes(bundle_dir: Path) -> None:
    expected = sha256_file(bundle_dir / "model.onnx")
    model = onnx.load(str(bundle_dir / "model.onnx"))
    weights = bytearray(model.graph.initializer[0].raw_data)
    weights[0] ^= 0xFF  # another weight: same size, different content
    model.graph.initializer[0].raw_data = bytes(weights)
    onnx.save(model, str(bundle_dir / "model.onnx"))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert str(err.value) == (
        f"model.onnx sha256 mismatch: expected {expected}, got "
        f"{sha256_file(bundle_dir / 'model.onnx')}; the file was modified or truncated; "
        "re-copy the bundle or re-export it with ssma-export"
    )
    assert (
        load_bundle(bundle_dir, verify_hash=False).name == "tiny"
    )  # an explicit opt-out still loads


def test_truncated_onnx_is_refused_even_without_hashing(bundle_dir: Path) -> None:
    size = (bundle_dir / "model.onnx").stat().st_size
    with open(bundle_dir / "model.onnx", "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(
        BundleError,
        match=rf"model.onnx is {size // 2} bytes but bundle.json records {size}; "
        "the file was modified or truncated",
    ):
        load_bundle(bundle_dir, verify_hash=False)


@pytest.mark.parametrize("missing", ["model.onnx", "bundle.json"])
def test_missing_required_file_names_it_and_the_folder(bundle_dir: Path, missing: str) -> None:
    (bundle_dir / missing).unlink()
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert str(err.value).startswith(
        f"{missing} not found in bundle {bundle_dir}; a bundle needs model.onnx and bundle.json"
    )


def test_missing_listed_checkpoint_is_refused(
    tmp_path: Path, exported: tuple[TinyNet, Path]
) -> None:
    checkpoint = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, checkpoint)
    out = make_bundle(tmp_path / "b", exported[1], checkpoint_path=checkpoint)
    (out / "model.pt").unlink()
    with pytest.raises(
        BundleError, match="model.pt not found in bundle .* but bundle.json lists it"
    ):
        load_bundle(out)


def test_missing_folder_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(
        BundleError, match="bundle folder .*nowhere not found.*make one with ssma-export"
    ):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"palette": PALETTE + [[1, 2, 3]]},
            "classes has 4 names but palette has 5 colours; re-export the bundle with ssma-export",
        ),
        (
            {"palette": PALETTE[:3] + [[300, 0, 0]]},
            "palette must be a list of [r, g, b] colours (integers 0-255)",
        ),
        ({"void_indices": [4]}, "void_indices must be a list of class indices in [0, 3], got [4]"),
        (
            {"classes": CLASSES[:3], "palette": PALETTE[:3]},
            "outputs[0].shape has 4 channels but classes has 3 names",
        ),
        ({"classes": ["a", "a", "b", "c"]}, "classes has duplicate names"),
        (
            {"format": "ssma_ros.bundle/2"},
            "format is 'ssma_ros.bundle/2' but this ssma_ros reads 'ssma_ros.bundle/1'",
        ),
        ({"preprocess": None}, "preprocess must be the modality encoding and normalisation spec"),
        ({"opset": 9}, "opset must be an integer >= 11, got 9"),
        ({"name": ""}, "name must be a non-empty string"),
        (
            {"preprocess": Preprocess(2 * HEIGHT, WIDTH).to_dict()},
            f"preprocess.input_size is [{2 * HEIGHT}, {WIDTH}] "
            f"but the network inputs are [{HEIGHT}, {WIDTH}]",
        ),
        (
            {"files": {"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}},
            "files must be an object that lists model.onnx",
        ),
    ],
)
def test_bad_field_is_named_with_what_to_do(bundle_dir: Path, changes: dict, message: str) -> None:
    edit_meta(bundle_dir, **changes)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert message in str(err.value)
    assert str(err.value).startswith(str(bundle_dir / "bundle.json"))
    assert "re-export the bundle with ssma-export" in str(err.value)


def test_files_outside_the_bundle_are_refused(bundle_dir: Path) -> None:
    with bundle_meta(bundle_dir) as meta:
        meta["files"]["../model.pt"] = meta["files"]["model.onnx"]
    with pytest.raises(BundleError, match=r"files lists '../model.pt'; a bundle holds only"):
        load_bundle(bundle_dir)


def test_io_problems_are_all_reported_at_once(bundle_dir: Path) -> None:
    with bundle_meta(bundle_dir) as meta:
        meta["inputs"][1]["name"] = "depth"
        meta["inputs"][0]["shape"] = [1, 3, HEIGHT, WIDTH + 8]
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    text = str(err.value)
    assert "has 3 problems" in text
    assert "preprocess.aux is set but the network has no 'aux' input" in text
    assert (
        "inputs must be named ['rgb', 'aux'] (in that order), ['rgb'] or ['aux'], "
        "got ['rgb', 'depth']" in text
    )
    assert "inputs must share one height and width" in text


def test_broken_json_says_to_recopy(bundle_dir: Path) -> None:
    (bundle_dir / "bundle.json").write_text('{"format": "ssma_ros.bundle/1",')
    with pytest.raises(BundleError, match="bundle.json is not valid JSON .*re-copy the bundle"):
        load_bundle(bundle_dir)


def test_write_refuses_inconsistent_metadata_before_writing_bundle_json(
    tmp_path: Path, exported: tuple[TinyNet, Path]
) -> None:
    with pytest.raises(BundleError, match="classes has 4 names but palette has 3 colours"):
        make_bundle(tmp_path / "b", exported[1], palette=PALETTE[:3])
    assert not (tmp_path / "b" / "bundle.json").exists()


def test_write_refuses_a_dynamic_shape_onnx(
    tmp_path: Path, exported: tuple[TinyNet, Path]
) -> None:
    model = onnx.load(str(exported[1]))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, str(tmp_path / "dynamic.onnx"))
    with pytest.raises(
        BundleError, match=r"rgb has a dynamic shape \[1, 3, 'height', 24\]; export with a fixed"
    ):
        make_bundle(tmp_path / "b", tmp_path / "dynamic.onnx")


def test_a_copied_bundle_loads_from_its_new_place(bundle_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(bundle_dir, tmp_path / "on_the_robot")
    assert load_bundle(copy).onnx_path == Path(copy).resolve() / "model.onnx"


# -- refusals at start-up (faults 6 and 8) ----------------------------------------------------


def rehash(bundle_dir: Path, name: str = "model.onnx") -> None:
    """Record a file's current hash and size in bundle.json, as a careless copy script might."""
    with bundle_meta(bundle_dir) as meta:
        path = bundle_dir / name
        meta["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.pop("input_size"), "preprocess.input_size is missing"),
        (lambda p: p.update(input_size=[HEIGHT]), "preprocess.input_size must be [height, width]"),
        (lambda p: p.update(rgb_mean=[0.5, "x", 0.5]), "preprocess: could not convert string"),
        (lambda p: p["aux"].update(modality="sonar"), "preprocess: unknown aux modality 'sonar'"),
        (lambda p: p.update(aux=None), "inputs include 'aux' but preprocess.aux is None"),
    ],
)
def test_a_malformed_preprocess_section_is_a_bundle_error(bundle_dir: Path, edit, message) -> None:
    """Fault 6: a malformed preprocess section ended in KeyError: 'input_size' in the node."""
    with bundle_meta(bundle_dir) as meta:
        edit(meta["preprocess"])
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert message in str(err.value)


def test_shapes_that_disagree_with_model_onnx_are_refused_before_any_allocation(
    bundle_dir: Path,
) -> None:
    """Fault 6: consistent but wrong shapes in bundle.json made the node allocate 27.9 GiB."""
    with bundle_meta(bundle_dir) as meta:
        for entry in meta["inputs"] + meta["outputs"]:
            entry["shape"][2:] = [60000, 90000]
        meta["preprocess"]["input_size"] = [60000, 90000]
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert str(err.value) == (
        f"{bundle_dir.resolve() / 'bundle.json'}: inputs[0].shape[2] is 60000 but model.onnx has "
        f"{HEIGHT}; bundle.json does not describe this model; re-copy the bundle or re-export it "
        "with ssma-export"
    )


def test_a_truncated_onnx_with_a_matching_hash_is_refused(bundle_dir: Path) -> None:
    """Fault 6: the hash only proves the file is the one recorded, not that it is a model."""
    size = (bundle_dir / "model.onnx").stat().st_size
    with open(bundle_dir / "model.onnx", "r+b") as f:
        f.truncate(size // 2)
    rehash(bundle_dir)
    with pytest.raises(BundleError, match=r"model.onnx is not a readable ONNX model \("):
        load_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "classes",
            ["void", "wall", "ground", "person"],
            "classes[1] is 'wall' but model.onnx "
            "was exported with 'ground': bundle.json was edited after export",
        ),
        ("palette", [PALETTE[0], PALETTE[1], PALETTE[2], [1, 2, 3]], "palette[3][0] is 1 but"),
        ("void_indices", [], "void_indices is [] but model.onnx was exported with [0]"),
    ],
)
def test_an_edited_bundle_json_fails_naming_the_field(
    bundle_dir: Path, field: str, value, message: str
) -> None:
    """Fault 8: swapping two class names loaded without complaint."""
    edit_meta(bundle_dir, **{field: value})
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert message in str(err.value)


def test_an_edited_preprocess_spec_fails_naming_the_field(bundle_dir: Path) -> None:
    with bundle_meta(bundle_dir) as meta:
        meta["preprocess"]["aux"]["depth_range_m"] = [0.5, 10.0]
    with pytest.raises(BundleError, match=r"preprocess.aux.depth_range_m\[1\] is 10.0 but"):
        load_bundle(bundle_dir)


def test_a_swapped_checkpoint_fails_even_with_its_hash_updated(
    tmp_path: Path, exported: tuple[TinyNet, Path]
) -> None:
    checkpoint = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, checkpoint)
    out = make_bundle(tmp_path / "bundle", exported[1], checkpoint_path=checkpoint)
    torch.save({"weights": torch.ones(3)}, out / "model.pt")
    rehash(out, "model.pt")
    with pytest.raises(
        BundleError, match=r"files.model.pt.sha256 is '[0-9a-f]{64}' but model.onnx"
    ):
        load_bundle(out)


def test_a_model_onnx_without_a_serving_contract_is_refused(bundle_dir: Path) -> None:
    model = onnx.load(str(bundle_dir / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(bundle_dir / "model.onnx"))
    rehash(bundle_dir)
    with pytest.raises(BundleError, match="model.onnx carries no serving contract"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("name", ["model.onnx", "bundle.json"])
def test_links_out_of_the_bundle_folder_are_refused(
    bundle_dir: Path, tmp_path: Path, name
) -> None:
    """Fault 8: model.onnx or bundle.json linking elsewhere loaded."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (bundle_dir / name).rename(elsewhere / name)
    (bundle_dir / name).symlink_to(elsewhere / name)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert str(err.value).startswith(f"{name} in bundle {bundle_dir.resolve()} links to ")
    assert "outside the bundle folder" in str(err.value)


def test_a_linked_bundle_folder_and_links_inside_it_load(bundle_dir: Path, tmp_path: Path) -> None:
    (bundle_dir / "v1").mkdir()
    (bundle_dir / "model.onnx").rename(bundle_dir / "v1" / "model.onnx")
    (bundle_dir / "model.onnx").symlink_to("v1/model.onnx")
    (tmp_path / "current").symlink_to(bundle_dir)
    assert load_bundle(tmp_path / "current").path == bundle_dir.resolve()


# -- backends refuse a corrupt model instead of replacing it (fault 6) ------------------------


def rewrite(source: Path, out: Path, onnx_model=None, checkpoint: Path | None = None) -> Path:
    """Re-bundle `source` with another model.onnx and/or model.pt (a consistent bundle.json)."""
    meta = json.loads((source / "bundle.json").read_text())
    shutil.copytree(source, out)
    if onnx_model is not None:
        onnx.save(onnx_model, str(out / "model.onnx"))
    return write_bundle(
        out,
        out / "model.onnx",
        name=meta["name"],
        arch=meta["arch"],
        classes=meta["classes"],
        palette=meta["palette"],
        preprocess=meta["preprocess"],
        void_indices=meta["void_indices"],
        checkpoint_path=checkpoint if checkpoint is not None else out / "model.pt",
    )


def test_auto_never_replaces_a_model_onnxruntime_rejects(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Fault 6: a model.onnx ONNX Runtime refused made `auto` serve model.pt with torch."""
    from ssma_ros.runtime import load_backend

    model = onnx.load(str(tiny_bundle / "model.onnx"))
    model.graph.node[0].op_type = "NoSuchOperator"  # parses, but no runtime can run it
    bundle = load_bundle(rewrite(tiny_bundle, tmp_path / "bad", onnx_model=model))
    with pytest.raises(BundleError) as err:
        load_backend(bundle, "auto", "cpu")
    assert str(err.value).startswith(f"{bundle.onnx_path} is rejected by onnxruntime (")
    assert "NoSuchOperator" in str(err.value)


def test_a_model_pt_that_is_not_a_checkpoint_is_a_bundle_error(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Fault 6: it escaped as a zip-archive traceback."""
    from ssma_ros.runtime import load_backend

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 4096)
    bundle = load_bundle(rewrite(tiny_bundle, tmp_path / "bad", checkpoint=garbage))
    with pytest.raises(BundleError) as err:
        load_backend(bundle, "torch", "cpu")
    assert str(err.value).startswith(f"{bundle.checkpoint_path} is not a readable checkpoint (")
    assert str(err.value).endswith("re-copy the bundle or re-export it with ssma-export")


def test_a_gpu_provider_that_fails_to_start_is_no_bundle_error(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CUDA provider failing at session creation is the GPU's problem: auto may go on."""
    import onnxruntime

    from ssma_ros.runtime import BackendUnavailable, onnxruntime_backend
    from ssma_ros.runtime.onnxruntime_backend import CPU_EP, CUDA_EP, OnnxRuntimeBackend

    real = onnxruntime_backend.create_session

    def gpu_fails(path, providers=(CPU_EP,), threads=0):
        if list(providers) != [CPU_EP]:
            raise RuntimeError("CUDA failure 2: out of memory")
        return real(path, providers, threads)

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_EP, CPU_EP])
    monkeypatch.setattr(onnxruntime_backend, "create_session", gpu_fails)
    bundle = load_bundle(tiny_bundle)
    with pytest.raises(BackendUnavailable, match="failed to start .*out of memory"):
        OnnxRuntimeBackend(bundle, "cuda:0", "fp32")
