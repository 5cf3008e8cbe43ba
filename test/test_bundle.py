"""The model bundle.

A write/load round trip on a really exported ONNX, and refusals that name their cause.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import ssma_ros
from ssma_ros.bundle import FORMAT, BundleError, load_bundle, sha256_file, write_bundle
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


def edit_meta(bundle_dir: Path, **changes) -> None:
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    meta.update(changes)
    (bundle_dir / "bundle.json").write_text(json.dumps(meta))


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
    assert bundle.files == {"model.onnx": sha256_file(exported[1])}
    assert bundle.onnx_path.read_bytes() == exported[1].read_bytes()
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
    data = bytearray((bundle_dir / "model.onnx").read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    (bundle_dir / "model.onnx").write_bytes(bytes(data))
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
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    meta["files"]["../model.pt"] = meta["files"]["model.onnx"]
    (bundle_dir / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"files lists '../model.pt'; a bundle holds only"):
        load_bundle(bundle_dir)


def test_io_problems_are_all_reported_at_once(bundle_dir: Path) -> None:
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    meta["inputs"][1]["name"] = "depth"
    meta["inputs"][0]["shape"] = [1, 3, HEIGHT, WIDTH + 8]
    (bundle_dir / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    text = str(err.value)
    assert "has 2 problems" in text
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
