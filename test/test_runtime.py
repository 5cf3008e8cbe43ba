"""Runtime backends on this machine (CPU, no TensorRT): real ONNX Runtime and PyTorch sessions."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from ssma_ros.bundle import Bundle, load_bundle, read_onnx_io
from ssma_ros.data.preprocess import Preprocess
from ssma_ros.export import bundle_cli
from ssma_ros.model.base import OUT
from ssma_ros.model.builder import build_model
from ssma_ros.model.checkpoint import save_checkpoint
from ssma_ros.model.config import ModelConfig
from ssma_ros.runtime import BackendUnavailable, load_backend
from ssma_ros.runtime.base import parse_device
from ssma_ros.runtime.onnxruntime_backend import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    OnnxRuntimeBackend,
    providers_for,
)
from ssma_ros.runtime.torch_backend import TorchBackend

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 32, 48
CLASSES = ["void", "ground", "obstacle"]
PALETTE = [[0, 0, 0], [128, 64, 128], [220, 20, 60]]
# The real network structure at toy size, so that exporting it twice stays quick.
TOY = ModelConfig(
    stem_width=8,
    widths=(16, 16, 32, 32),
    units=(1, 1, 1, 1),
    multiscale=(),
    aspp_width=8,
    aspp_out=16,
    decoder_width=16,
    skip_width=8,
    ssma_eta_aspp=4,
    ssma_eta_skip=2,
)


@dataclass
class Exported:
    model: nn.Module
    checkpoint: Path
    bundle: Bundle
    stdout: str


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A trained-looking checkpoint (early fusion, toy size) exported by the real ssma-export CLI."""
    folder = tmp_path_factory.mktemp("runtime")
    torch.manual_seed(0)
    model = build_model("early", TOY, len(CLASSES)).eval()
    checkpoint = save_checkpoint(
        folder / "best.pt",
        model,
        classes=CLASSES,
        palette=PALETTE,
        void_index=0,
        preprocess=Preprocess(HEIGHT, WIDTH).to_dict(),
        metrics={"miou": 0.5},
        stage="expert",
        iteration=10,
    )
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert bundle_cli.main([str(checkpoint), "--out", str(folder / "bundle"), "--fp16"]) == 0
    return Exported(model, checkpoint, load_bundle(folder / "bundle"), stdout.getvalue())


def random_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal((1, 3, HEIGHT, WIDTH), dtype=np.float32)
        for name in ("rgb", "aux")
    }


def torch_logits(model: nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs["rgb"]), torch.from_numpy(inputs["aux"]))[OUT]
        return logits.numpy()


def test_export_cli_writes_a_verified_bundle_from_the_checkpoint_meta(exported: Exported) -> None:
    diff = float(
        re.search(r"fp32 logits: max abs diff (\S+) \(limit 0.0001\)", exported.stdout).group(1)
    )
    assert 0 <= diff <= 1e-4
    assert "fp16 ONNX vs torch fp32: max abs diff" in exported.stdout
    bundle = exported.bundle
    assert set(bundle.files) == {"model.onnx", "model_fp16.onnx", "model.pt"}
    assert bundle.checkpoint_path.read_bytes() == exported.checkpoint.read_bytes()
    assert (bundle.name, bundle.arch) == ("bundle", "early")
    assert bundle.classes == tuple(CLASSES) and bundle.palette == tuple(tuple(c) for c in PALETTE)
    assert bundle.void_indices == (0,)
    assert Preprocess.from_dict(bundle.preprocess) == Preprocess(HEIGHT, WIDTH)
    assert bundle.meta["metrics"] == {"miou": 0.5}
    assert bundle.meta["training"] == {"stage": "expert", "iteration": 10}
    assert [(s.name, s.shape) for s in bundle.inputs] == [
        ("rgb", (1, 3, HEIGHT, WIDTH)),
        ("aux", (1, 3, HEIGHT, WIDTH)),
    ]
    fp16_inputs, fp16_outputs, _ = read_onnx_io(bundle.onnx_fp16_path)
    assert {s.dtype for s in fp16_inputs + fp16_outputs} == {"float16"}


def test_export_cli_refusals_say_what_to_do(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        bundle_cli.main([str(exported.checkpoint), "--out", str(tmp_path / "b"), "--height", "64"])
        == 1
    )
    assert (
        "--height/--width 64x48 differ from the preprocess input_size 32x48 the model was trained with"
        in capsys.readouterr().err
    )
    bare = save_checkpoint(tmp_path / "bare.pt", exported.model, palette=PALETTE)
    assert bundle_cli.main([str(bare), "--out", str(tmp_path / "b")]) == 1
    assert (
        "has no ['classes', 'preprocess'] in its meta; save it with save_checkpoint("
        in capsys.readouterr().err
    )
    assert not (tmp_path / "b" / "bundle.json").exists()


def test_onnxruntime_matches_the_torch_model(exported: Exported) -> None:
    backend = OnnxRuntimeBackend(exported.bundle, device="cpu", threads=1)
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")
    assert backend.providers == [CPU_EP]
    # idle pool threads sleep: the node shares its cores with the camera driver and the consumers
    assert (
        backend._session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning"
        )
        == "0"
    )
    # where the TensorRT EP would cache its engines: per ONNX content and onnxruntime version
    assert backend.cache_dir == (
        exported.bundle.engines_dir
        / "onnxruntime"
        / f"{exported.bundle.files['model.onnx'][:16]}_ort{onnxruntime.__version__}"
    )
    for seed in range(2):
        inputs = random_inputs(seed)
        logits = backend.infer(inputs)
        assert logits.dtype == np.float32 and logits.shape == (1, len(CLASSES), HEIGHT, WIDTH)
        np.testing.assert_allclose(logits, torch_logits(exported.model, inputs), atol=1e-4)
    backend.close()


def test_torch_backend_serves_model_pt_like_onnxruntime(
    exported: Exported, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ssma_ros.runtime"):
        backend = TorchBackend(exported.bundle, device="cuda:0", precision="fp16")
    # no GPU here: it says so and runs fp32 on the CPU
    assert (backend.name, backend.device, backend.precision) == ("torch", "cpu", "fp32")
    assert (
        "torch sees no CUDA GPU; the torch backend runs on the CPU instead of cuda:0"
        in caplog.text
    )
    inputs = random_inputs(5)
    logits = backend.infer(inputs)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits, torch_logits(exported.model, inputs))
    ort_backend = OnnxRuntimeBackend(exported.bundle, device="cpu")
    np.testing.assert_allclose(logits, ort_backend.infer(inputs), atol=1e-4)
    backend.close()


def test_auto_takes_torch_when_onnxruntime_is_absent(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "onnxruntime", None
    )  # import fails as on a machine without it
    backend, reason = load_backend(exported.bundle, device="cpu")
    assert backend.name == "torch"
    assert reason.startswith(
        "auto chose torch on cpu (fp32); skipped onnxruntime on cpu: onnxruntime not importable"
    )
    assert "pip install onnxruntime" in reason


def test_inputs_are_checked_by_name_and_shape(exported: Exported) -> None:
    backend = OnnxRuntimeBackend(exported.bundle, device="cpu")
    inputs = random_inputs()
    with pytest.raises(ValueError, match=r"missing network input\(s\) \['aux'\]; got \['rgb'\]"):
        backend.infer({"rgb": inputs["rgb"]})
    with pytest.raises(
        ValueError,
        match=r"input 'aux' has shape \(1, 3, 8, 48\), the network takes \(1, 3, 32, 48\)",
    ):
        backend.infer({"rgb": inputs["rgb"], "aux": inputs["aux"][:, :, :8]})
    # float64 and non-contiguous arrays are converted, not refused
    wide = {"rgb": inputs["rgb"].astype(np.float64), "aux": np.asfortranarray(inputs["aux"])}
    np.testing.assert_allclose(backend.infer(wide), backend.infer(inputs), atol=1e-6)


def test_provider_order_and_tensorrt_ep_cache_options(tmp_path: Path) -> None:
    everything = [TRT_EP, CUDA_EP, CPU_EP, "AzureExecutionProvider"]
    providers = providers_for(everything, "cuda:1", "fp16", tmp_path / "engines" / "onnxruntime")
    assert [p if isinstance(p, str) else p[0] for p in providers] == [TRT_EP, CUDA_EP, CPU_EP]
    trt_options = providers[0][1]
    assert trt_options["device_id"] == 1 and providers[1][1] == {"device_id": 1}
    assert trt_options["trt_fp16_enable"] is True
    assert trt_options["trt_engine_cache_enable"] is True
    assert trt_options["trt_engine_cache_path"] == str(tmp_path / "engines" / "onnxruntime")
    assert providers_for(everything, "cuda:0", "fp32", tmp_path)[0][1]["trt_fp16_enable"] is False
    # only what this build has, and nothing GPU-side for the CPU
    assert providers_for([CUDA_EP, CPU_EP], "cuda", "fp16", tmp_path) == [
        (CUDA_EP, {"device_id": 0}),
        CPU_EP,
    ]
    assert providers_for(everything, "cpu", "fp16", tmp_path) == [CPU_EP]


def test_auto_picks_onnxruntime_here_and_says_why_the_others_were_skipped(
    exported: Exported, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ssma_ros.runtime"):
        backend, reason = load_backend(exported.bundle)  # defaults: auto, cuda:0, fp16
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")
    assert reason.startswith(
        "auto chose onnxruntime on cpu (fp32); skipped tensorrt on cuda:0: TensorRT not "
        "importable: on Jetson use the system Python with JetPack's python3-libnvinfer"
    )
    assert "onnxruntime on cuda:0: onnxruntime 1." in reason and "has no GPU provider" in reason
    assert (
        "torch on cuda:0: torch 2." in reason
        and "sees no CUDA GPU (torch.cuda.is_available() is False)" in reason
    )
    assert reason in caplog.text
    np.testing.assert_allclose(
        backend.infer(random_inputs()), torch_logits(exported.model, random_inputs()), atol=1e-4
    )


def test_auto_on_the_cpu_does_not_try_the_gpu_backends(exported: Exported) -> None:
    backend, reason = load_backend(exported.bundle, device="cpu")
    assert reason == "auto chose onnxruntime on cpu (fp32)"


def test_explicit_tensorrt_fails_with_the_install_hint(exported: Exported) -> None:
    with pytest.raises(BackendUnavailable) as err:
        load_backend(exported.bundle, backend="tensorrt")
    assert str(err.value).startswith(
        "TensorRT not importable: on Jetson use the system Python with JetPack's python3-libnvinfer "
        "(venv --system-site-packages); on x86 pip install 'tensorrt-cu12>=10.3,<11'; or use backend onnxruntime"
    )
    with pytest.raises(BackendUnavailable, match="TensorRT needs a CUDA GPU"):
        load_backend(exported.bundle, backend="tensorrt", device="cpu")


def test_explicit_onnxruntime_on_a_missing_gpu_says_it_runs_on_the_cpu(
    exported: Exported, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ssma_ros.runtime"):
        backend, reason = load_backend(exported.bundle, backend="onnxruntime", device="cuda:0")
    assert backend.device == "cpu"
    assert (
        reason
        == "backend onnxruntime as requested, on cpu (fp32) instead of cuda:0: no usable GPU for it here"
    )
    assert "onnxruntime runs on the CPU although cuda:0 was asked for" in caplog.text


def test_no_backend_at_all_lists_every_reason(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailable) as err:
        load_backend(exported.bundle, device="cpu")
    text = str(err.value)
    assert text.startswith("no backend can run bundle bundle:")
    assert (
        "onnxruntime on cpu: onnxruntime not importable" in text
        and "pip install onnxruntime" in text
    )
    assert "torch on cpu: torch not importable" in text


def test_bad_arguments_are_refused(exported: Exported) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend(exported.bundle, backend="openvino")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_backend(exported.bundle, precision="int8")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        load_backend(exported.bundle, device="gpu0")
    assert parse_device("cuda") == ("cuda", 0) and parse_device("cuda:2") == ("cuda", 2)


def test_runtime_imports_no_heavy_library_and_nothing_from_training() -> None:
    code = (
        "import sys, ssma_ros.runtime, ssma_ros.bundle, ssma_ros.export.tensorrt\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'onnx', 'tensorrt')"
        " or m.startswith(('ssma_ros.train', 'ssma_ros.data'))]\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_segmenter_warm_up_serves_black_frames_through_the_backend(exported: Exported) -> None:
    from ssma_ros.node.segmenter import Segmenter

    backend = OnnxRuntimeBackend(exported.bundle, device="cpu", threads=1)
    seen = []
    real_infer = backend.infer
    backend.infer = lambda inputs: seen.append(inputs) or real_infer(inputs)
    segmenter = Segmenter(exported.bundle, backend)
    assert segmenter.warm_up(runs=2) > 0
    assert len(seen) == 2 and set(seen[0]) == {"rgb", "aux"}
    np.testing.assert_array_equal(
        seen[0]["rgb"], segmenter.inputs(np.zeros((HEIGHT, WIDTH, 3), np.uint8))["rgb"]
    )
    np.testing.assert_array_equal(
        seen[0]["aux"], segmenter.preprocess.blank_aux()
    )  # "no aux" as in training
    segmenter.close()
