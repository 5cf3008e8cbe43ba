"""ONNX export of the networks, checked against PyTorch in a real onnxruntime session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ssma_ros.export.onnx import export_onnx, onnx_matches_torch
from ssma_ros.model import build_model
from ssma_ros.model.base import OUT

H, W = 64, 96


def _randomise_batch_norm(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affines, so export errors in BN cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.fixture(scope="module")
def ssma() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("ssma", "lite", 12)
    _randomise_batch_norm(model, 0)
    return model


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, H, W, generator=g), torch.randn(1, 3, H, W, generator=g)


@pytest.fixture(scope="module")
def fp32_file(ssma, tmp_path_factory) -> Path:
    ssma.train()  # export must switch to eval itself and restore the mode afterwards
    path = export_onnx(ssma, tmp_path_factory.mktemp("fp32") / "ssma.onnx", H, W)
    assert ssma.training
    return path


def test_fp32_export_is_one_checked_file_with_named_io(fp32_file: Path) -> None:
    assert [p.name for p in fp32_file.parent.iterdir()] == ["ssma.onnx"]  # no external data
    model = onnx.load(str(fp32_file))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8  # the oldest IR for opset 18; TensorRT 10.3 needs <= 10
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    assert [i.name for i in model.graph.input] == ["rgb", "aux"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 12, H, W]


def test_onnxruntime_matches_pytorch(ssma, fp32_file: Path, pair) -> None:
    diff = onnx_matches_torch(ssma, fp32_file, pair, atol=1e-4)
    print(f"lite SSMA fp32 ONNX vs torch: max abs diff {diff:.2e}")
    assert diff <= 1e-4


def test_onnx_check_fails_when_the_model_differs(ssma, fp32_file: Path, pair) -> None:
    conv = ssma.decoder.up_full[0]
    original = conv.weight.detach().clone()
    with torch.no_grad():
        conv.weight.mul_(1.5)
    try:
        with pytest.raises(AssertionError, match="differs from PyTorch"):
            onnx_matches_torch(ssma, fp32_file, {"rgb": pair[0], "aux": pair[1]})
    finally:
        with torch.no_grad():
            conv.weight.copy_(original)


def test_fp16_export_loads_in_onnxruntime_and_is_close(tmp_path) -> None:
    """FP16 file (weights and I/O in float16) of a unimodal model whose input is renamed;
    one export covers the fp16 path and the single-input naming (exports are slow on CPU).
    """
    model = build_model("adapnet", "lite", 5, modality="aux")
    _randomise_batch_norm(model, 2)
    path = export_onnx(model, tmp_path / "ir_fp16.onnx", H, W, fp16=True, input_names=["ir"])
    proto = onnx.load(str(path))
    fp16 = onnx.TensorProto.FLOAT16
    io = [*proto.graph.input, *proto.graph.output]
    assert all(v.type.tensor_type.elem_type == fp16 for v in io)
    float_types = (onnx.TensorProto.FLOAT, fp16)
    float_inits = [t for t in proto.graph.initializer if t.data_type in float_types]
    assert float_inits and all(t.data_type == fp16 for t in float_inits)
    assert next(model.parameters()).dtype == torch.float32  # the fp16 copy left the model alone

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("ir", "tensor(float16)")]
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    diff = onnx_matches_torch(model, path, [x], atol=None)
    model.eval()
    with torch.no_grad():
        scale = model(x)[OUT].abs().max().item()
    print(
        f"lite AdapNet++ fp16 ONNX vs fp32 torch: max abs diff {diff:.2e} "
        f"(logit scale {scale:.1f})"
    )
    assert diff <= 1e-2 * max(1.0, scale)
    out = session.run(["logits"], {"ir": x.numpy().astype(np.float16)})[0]
    assert out.shape == (1, 5, H, W) and np.isfinite(out).all()


def test_export_rejects_unsupported_opset(ssma, tmp_path) -> None:
    with pytest.raises(ValueError, match="opset 11 not supported"):
        export_onnx(ssma, tmp_path / "x.onnx", H, W, opset=11)
