"""TensorRT engine builder, cache and backend logic, against a FAKE `tensorrt` and CUDA.

There is no GPU or TensorRT here. The fake mimics the documented TensorRT 10.3 / 11 Python API
surface the code uses (reference/tensorrt_notes.md §1) and records what it was asked to do, so
these tests check our decisions (flags, typing, which ONNX, which device, cache keys, buffers,
error text), not TensorRT. `FakeCuda` stands in for torch.cuda on a machine with two different
GPUs: it tracks the current device, and its "device" and pinned buffers are CPU tensors, so the
fake engine reads its inputs and writes its logits at the addresses the backend hands it.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ssma_ros.bundle import Bundle, load_bundle, write_bundle
from ssma_ros.data.preprocess import Preprocess
from ssma_ros.export import engine_cli
from ssma_ros.runtime import BackendUnavailable, load_backend
from ssma_ros.runtime.engine_cache import (
    EngineBuildError,
    GpuInfo,
    engine_cache_key,
    engine_spec,
    ensure_engine,
    trtexec_command,
)
from ssma_ros.runtime.onnxruntime_backend import TRT_EP, OnnxRuntimeBackend
from ssma_ros.runtime.tensorrt_backend import TensorRTBackend, load_engine

ORIN = GpuInfo(0, "Orin (nvgpu)", (8, 7))
RTX = GpuInfo(1, "NVIDIA GeForce RTX 4090", (8, 9))
GPUS = (ORIN, RTX)
SHA = "0123456789abcdef" + "f" * 48
SHAPES = {"rgb": (1, 3, 8, 8), "aux": (1, 1, 8, 8), "logits": (1, 2, 8, 8)}


# ------------------------------------------------------------------------------------------------
# The fake CUDA (torch.cuda on a machine with GPUS) and the fake TensorRT


class FakeCuda:
    """torch.cuda with GPUS: the current device, stream events and where buffers were asked for."""

    def __init__(self) -> None:
        self.current = 0
        self.events: list[str] = []
        self.allocations: list[tuple[str, torch.dtype]] = []

    @contextlib.contextmanager
    def device(self, index: int | torch.device):
        index = index.index if isinstance(index, torch.device) else int(index)
        previous, self.current = self.current, index
        try:
            yield
        finally:
            self.current = previous

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
        cuda, real_empty = torch.cuda, torch.empty
        properties = {g.index: (g.name, *g.compute_capability) for g in GPUS}

        def empty(shape, *, dtype=None, device=None, pin_memory=False):
            self.allocations.append(("pinned" if pin_memory else str(device), dtype))
            return real_empty(shape, dtype=dtype)  # on the CPU: the fake engine reads it there

        stream = types.SimpleNamespace(
            cuda_stream=0x5EED, synchronize=lambda: self.events.append("synchronize")
        )
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "device_count", lambda: len(GPUS))
        monkeypatch.setattr(
            cuda,
            "get_device_properties",
            lambda i: types.SimpleNamespace(
                name=properties[i][0], major=properties[i][1], minor=properties[i][2]
            ),
        )
        monkeypatch.setattr(cuda, "init", lambda: None)
        monkeypatch.setattr(cuda, "device", self.device)
        monkeypatch.setattr(cuda, "Stream", lambda device: stream)
        monkeypatch.setattr(cuda, "stream", lambda s: contextlib.nullcontext())
        monkeypatch.setattr(torch, "empty", empty)
        return self


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    return FakeCuda().install(monkeypatch)


class ParserError:
    def __init__(self, node: int, name: str, operator: str, desc: str) -> None:
        self._fields = (node, name, operator, desc)

    def node(self) -> int:
        return self._fields[0]

    def node_name(self) -> str:
        return self._fields[1]

    def node_operator(self) -> str:
        return self._fields[2]

    def desc(self) -> str:
        return self._fields[3]


def _at(address: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Return the array at a raw buffer address, as an engine sees its I/O tensors."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(address))
    return raw.view(dtype).reshape(shape)


def fake_network(rgb: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """Compute what the fake engines do: logit k = sum of the rgb channels + (k + 1) x aux."""
    return np.concatenate([rgb.sum(axis=1, keepdims=True) + k * aux for k in (1, 2)], axis=1)


def fake_tensorrt(
    version: str,
    cuda: FakeCuda,
    *,
    parse_errors: tuple[ParserError, ...] = (),
    build_fails: bool = False,
    no_context: bool = False,
    enqueue_fails: bool = False,
) -> types.ModuleType:
    """Make a `tensorrt` module of `version` ("10.3.0.30" has BuilderFlag.FP16, "11.x" not).

    `trt.calls` records the API calls. Plans are b"plan:<version>:<GPU name>:<onnx file name>",
    built for the current CUDA device; the runtime only deserializes plans of its own version
    for the current device's GPU, as real TensorRT refuses another version's or GPU's plan.
    Engines from model_fp16.onnx have fp16 I/O (TensorRT 11), others fp32.
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []
    major = int(version.split(".")[0])
    flags = ["TF32", "FP16", "BF16", "INT8"] if major == 10 else ["TF32"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flags)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    )
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.TensorIOMode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])
    trt.DataType = enum.Enum("DataType", ["FLOAT", "HALF", "INT64"])

    def plan_prefix() -> bytes:
        return f"plan:{version}:{GPUS[cuda.current].name}:".encode()

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return b"timing:" + version.encode()

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.onnx = ""

    class Config:
        def __init__(self) -> None:
            self.cache: TimingCache | None = None

        def set_memory_pool_limit(self, pool: enum.IntEnum, size: int) -> None:
            trt.calls.append(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag: enum.IntEnum) -> None:
            trt.calls.append(("set_flag", flag.name))

        def clear_flag(self, flag: enum.IntEnum) -> None:
            trt.calls.append(("clear_flag", flag.name))

        def create_timing_cache(self, data: bytes) -> TimingCache:
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            trt.calls.append(("set_timing_cache", cache.data, ignore_mismatch))
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            assert isinstance(logger, Logger)

        def create_network(self, flags: int) -> Network:
            trt.calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            trt.calls.append(("build_serialized_network", cuda.current))
            return None if build_fails else plan_prefix() + network.onnx.encode()

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            trt.calls.append(("parse_from_file", Path(path).name))
            self.network.onnx = Path(path).name
            self.num_errors = len(parse_errors)
            return not parse_errors

        def get_error(self, i: int) -> ParserError:
            return parse_errors[i]

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine
            self.addresses: dict[str, int] = {}

        def set_tensor_address(self, name: str, address: int) -> None:
            self.addresses[name] = address

        def execute_async_v3(self, stream: int) -> bool:
            trt.calls.append(("execute_async_v3", stream))
            cuda.events.append("enqueue")
            if enqueue_fails:
                return False
            dtype = np.float16 if self.engine.io_dtype == trt.DataType.HALF else np.float32
            rgb, aux = (_at(self.addresses[n], SHAPES[n], dtype) for n in ("rgb", "aux"))
            logits = _at(self.addresses["logits"], SHAPES["logits"], dtype)
            logits[...] = fake_network(rgb, aux)
            return True

    class Engine:
        num_io_tensors = 3

        def __init__(self, plan: bytes) -> None:
            self.plan = plan
            fp16_io = plan.endswith(b"model_fp16.onnx")
            self.io_dtype = trt.DataType.HALF if fp16_io else trt.DataType.FLOAT

        def get_tensor_name(self, index: int) -> str:
            return ("rgb", "aux", "logits")[index]

        def get_tensor_mode(self, name: str) -> enum.Enum:
            return trt.TensorIOMode.OUTPUT if name == "logits" else trt.TensorIOMode.INPUT

        def get_tensor_dtype(self, name: str) -> enum.Enum:
            return self.io_dtype

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return SHAPES[name]

        def create_execution_context(self) -> Context | None:
            trt.calls.append(("create_execution_context", cuda.current))
            return None if no_context else Context(self)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> Engine | None:
            trt.calls.append(("deserialize_cuda_engine", cuda.current))
            return Engine(plan) if plan.startswith(plan_prefix()) else None

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    return trt


def calls(trt: types.ModuleType, name: str) -> list[tuple]:
    return [c for c in trt.calls if c[0] == name]


# ------------------------------------------------------------------------------------------------
# A small real bundle (a 1x1 conv made with onnx.helper: the fake parser never reads it).


def conv_onnx(path: Path, elem_type: int) -> Path:
    weight = helper.make_tensor("w", elem_type, [2, 4, 1, 1], np.ones(8).tolist())
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["rgb", "aux"], ["x"], axis=1),
            helper.make_node("Conv", ["x", "w"], ["logits"]),
        ],
        "conv",
        [
            helper.make_tensor_value_info("rgb", elem_type, [1, 3, 8, 8]),
            helper.make_tensor_value_info("aux", elem_type, [1, 1, 8, 8]),
        ],
        [helper.make_tensor_value_info("logits", elem_type, [1, 2, 8, 8])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return load_bundle(
        write_bundle(
            tmp_path / "bundle",
            conv_onnx(tmp_path / "a.onnx", TensorProto.FLOAT),
            onnx_fp16_path=conv_onnx(tmp_path / "b.onnx", TensorProto.FLOAT16),
            name="conv",
            arch="conv",
            classes=["floor", "obstacle"],
            palette=[[0, 255, 0], [255, 0, 0]],
            preprocess=Preprocess(8, 8).to_dict(),
        )
    )


# ------------------------------------------------------------------------------------------------


def test_engine_cache_key_is_stable_and_readable() -> None:
    key = engine_cache_key(SHA, "10.3.0.30", "Orin (nvgpu)", (8, 7), "fp16")
    assert key == "0123456789abcdef_trt10.3.0.30_orin-nvgpu_sm87_fp16"
    assert engine_cache_key(SHA, "10.3.0.30", "Orin (nvgpu)", (8, 7), "fp16") == key


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "fedcba9876543210" + "0" * 48},
        {"trt_version": "10.3.0.26"},
        {"gpu_name": "NVIDIA GeForce RTX 4090"},
        {"compute_capability": (8, 6)},
        {"precision": "fp32"},
    ],
)
def test_engine_cache_key_changes_with_each_component(change: dict) -> None:
    base = dict(
        onnx_sha256=SHA,
        trt_version="10.3.0.30",
        gpu_name="Orin (nvgpu)",
        compute_capability=(8, 7),
        precision="fp16",
    )
    assert engine_cache_key(**base) != engine_cache_key(**{**base, **change})


@pytest.mark.parametrize(
    "gpu_name", ["NVIDIA GeForce RTX 4090 / Laptop: GPU", "..\\..\\evil", "   ", "Tesla*V100?<>|"]
)
def test_engine_cache_key_is_filesystem_safe(gpu_name: str) -> None:
    key = engine_cache_key(SHA, "11.4.0.1", gpu_name, (9, 0), "fp32")
    assert re.fullmatch(r"[0-9a-f]{16}_trt11\.4\.0\.1_[a-z0-9][a-z0-9.-]*_sm90_fp32", key), key
    assert len(key) < 120


def test_engine_cache_key_refuses_bad_components() -> None:
    with pytest.raises(ValueError, match="onnx_sha256 must be hex"):
        engine_cache_key("../../x", "10.3", "gpu", (8, 7), "fp16")
    with pytest.raises(ValueError, match="precision must be"):
        engine_cache_key(SHA, "10.3", "gpu", (8, 7), "int8")


def test_trtexec_command_trt10_uses_the_fp16_flag_on_the_fp32_onnx(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    spec = engine_spec(fake_tensorrt("10.3.0.30", cuda), bundle, "fp16", ORIN)
    command = trtexec_command(spec, workspace_mib=512)
    engines = bundle.engines_dir
    assert command == (
        f"/usr/src/tensorrt/bin/trtexec --device=0 --onnx={bundle.path}/model.onnx "
        f"--saveEngine={engines}/{spec.key}.plan --fp16 --memPoolSize=workspace:512M "
        f"--timingCacheFile={engines}/timing_trt10.3.0.30_orin-nvgpu_sm87.cache"
    )
    fp32 = trtexec_command(engine_spec(fake_tensorrt("10.3.0.30", cuda), bundle, "fp32", ORIN))
    assert "--fp16" not in fp32 and "--noTF32" in fp32 and "--noTF32" not in command


def test_trtexec_command_trt11_is_strongly_typed_on_the_fp16_onnx(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    spec = engine_spec(fake_tensorrt("11.4.0.1", cuda), bundle, "fp16", ORIN)
    command = trtexec_command(spec)
    assert f"--onnx={bundle.path}/model_fp16.onnx" in command
    assert "--stronglyTyped" in command and "--fp16" not in command
    assert "--memPoolSize=workspace:1024M" in command
    assert spec.key.startswith(bundle.files["model_fp16.onnx"][:16])


def test_trt10_fp16_build_sets_the_fp16_flag_and_writes_plan_record_and_timing_cache(
    bundle: Bundle,
    cuda: FakeCuda,
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    assert ensure_engine(trt, spec, workspace_mib=256) is True
    assert calls(trt, "create_network") == [("create_network", 0)]  # weakly typed, explicit batch
    assert calls(trt, "parse_from_file") == [("parse_from_file", "model.onnx")]
    assert calls(trt, "set_flag") == [("set_flag", "FP16")]
    assert calls(trt, "set_memory_pool_limit") == [
        ("set_memory_pool_limit", "WORKSPACE", 256 << 20)
    ]
    assert spec.plan_path.read_bytes() == b"plan:10.3.0.30:Orin (nvgpu):model.onnx"
    record = json.loads(spec.record_path.read_text())
    assert (
        record["key"] == spec.key
        and record["precision"] == "fp16"
        and record["tensorrt"] == "10.3.0.30"
    )
    assert spec.timing_cache.read_bytes() == b"timing:10.3.0.30"
    assert sorted(p.name for p in spec.plan_path.parent.iterdir()) == sorted(
        [spec.plan_path.name, spec.record_path.name, spec.timing_cache.name]
    )  # no temporary files left

    ensure_engine(trt, spec, force=True)  # the second build starts from the saved timing cache
    assert calls(trt, "set_timing_cache")[-1] == ("set_timing_cache", b"timing:10.3.0.30", False)


def test_trt11_fp16_build_is_strongly_typed_from_the_fp16_onnx(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    trt = fake_tensorrt("11.4.0.1", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    ensure_engine(trt, spec)
    assert calls(trt, "create_network") == [("create_network", 1 << 1)]  # 1 << STRONGLY_TYPED
    assert calls(trt, "parse_from_file") == [("parse_from_file", "model_fp16.onnx")]
    assert calls(trt, "set_flag") == []
    assert spec.plan_path.read_bytes() == b"plan:11.4.0.1:Orin (nvgpu):model_fp16.onnx"


def test_trt11_fp16_without_an_fp16_onnx_says_how_to_get_one(
    bundle: Bundle, cuda: FakeCuda, tmp_path: Path
) -> None:
    fp32_only = load_bundle(
        write_bundle(
            tmp_path / "fp32_only",
            bundle.onnx_path,
            name="conv",
            arch="conv",
            classes=list(bundle.classes),
            palette=[list(c) for c in bundle.palette],
            preprocess=bundle.preprocess,
        )
    )
    with pytest.raises(
        EngineBuildError,
        match="TensorRT 11.4.0.1 builds FP16 only from an FP16 ONNX .* "
        "re-export it with ssma-export --fp16, or use --precision fp32",
    ):
        engine_spec(fake_tensorrt("11.4.0.1", cuda), fp32_only, "fp16", ORIN)
    assert (
        engine_spec(fake_tensorrt("11.4.0.1", cuda), fp32_only, "fp32", ORIN).onnx_path.name
        == "model.onnx"
    )


def test_parser_errors_name_the_node_and_operator(bundle: Bundle, cuda: FakeCuda) -> None:
    trt = fake_tensorrt(
        "10.3.0.30",
        cuda,
        parse_errors=(
            ParserError(
                7, "/decoder/up/Resize", "Resize", "unsupported coordinate_transformation_mode"
            ),
            ParserError(9, "/easpp/pool/ReduceMean", "ReduceMean", "axes must be an initializer"),
        ),
    )
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    with pytest.raises(EngineBuildError) as err:
        ensure_engine(trt, spec)
    text = str(err.value)
    assert text.startswith(f"TensorRT could not parse {spec.onnx_path} (2 error(s)):")
    assert (
        "node #7 '/decoder/up/Resize' (Resize): unsupported coordinate_transformation_mode" in text
    )
    assert "node #9 '/easpp/pool/ReduceMean' (ReduceMean): axes must be an initializer" in text
    assert calls(trt, "build_serialized_network") == [] and not spec.plan_path.exists()


def test_a_failed_build_points_at_memory_and_workspace(bundle: Bundle, cuda: FakeCuda) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda, build_fails=True)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    with pytest.raises(EngineBuildError) as err:
        ensure_engine(trt, spec, workspace_mib=2048)
    text = str(err.value)
    assert "could not build an engine" in text and "workspace 2048 MiB" in text
    assert "most often GPU memory" in text and "lower --workspace-mib" in text
    assert trtexec_command(spec, 2048) + " --verbose" in text
    assert not spec.plan_path.exists() and not spec.record_path.exists()


def test_cache_hit_does_not_rebuild(bundle: Bundle, cuda: FakeCuda) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    assert ensure_engine(trt, spec) is True
    assert ensure_engine(trt, spec) is False
    assert ensure_engine(trt, engine_spec(trt, load_bundle(bundle.path), "fp16", ORIN)) is False
    assert len(calls(trt, "build_serialized_network")) == 1
    # another precision or GPU is another engine
    assert ensure_engine(trt, engine_spec(trt, bundle, "fp32", ORIN)) is True
    assert (
        ensure_engine(trt, engine_spec(trt, bundle, "fp16", GpuInfo(0, "NVIDIA A100", (8, 0))))
        is True
    )
    assert len(calls(trt, "build_serialized_network")) == 3


def test_a_plan_whose_record_names_another_key_is_rebuilt_not_loaded(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    spec.plan_path.parent.mkdir(parents=True)
    spec.plan_path.write_bytes(b"someone else's plan")
    spec.record_path.write_text(
        json.dumps({"key": "0000000000000000_trt10.3.0.30_orin-nvgpu_sm87_fp32"})
    )
    assert ensure_engine(trt, spec) is True
    assert spec.plan_path.read_bytes() == b"plan:10.3.0.30:Orin (nvgpu):model.onnx"
    assert json.loads(spec.record_path.read_text())["key"] == spec.key


def test_without_building_a_missing_engine_is_an_error_that_says_how_to_build(
    bundle: Bundle,
    cuda: FakeCuda,
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    with pytest.raises(EngineBuildError) as err:
        ensure_engine(trt, spec, allow_build=False)
    assert f"no usable TensorRT engine {spec.plan_path} (not built yet); build it with:" in str(
        err.value
    )
    assert f"ssma-build-engine {bundle.path} --precision fp16 --force" in str(err.value)


def test_load_engine_rebuilds_a_cached_plan_that_tensorrt_refuses(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    spec.plan_path.parent.mkdir(parents=True)
    spec.plan_path.write_bytes(
        b"plan:10.2.0.19:Orin (nvgpu):model.onnx"
    )  # e.g. left by trtexec of another TensorRT
    engine = load_engine(trt, trt.Runtime(None), spec)
    assert engine.plan == b"plan:10.3.0.30:Orin (nvgpu):model.onnx"
    assert len(calls(trt, "build_serialized_network")) == 1

    spec.plan_path.write_bytes(b"plan:10.2.0.19:Orin (nvgpu):model.onnx")
    with pytest.raises(
        EngineBuildError,
        match=r"could not load the engine .*rebuild it with:\n  ssma-build-engine",
    ):
        load_engine(trt, trt.Runtime(None), spec, allow_build=False)


def test_load_engine_from_the_cache_deserializes_without_building(
    bundle: Bundle, cuda: FakeCuda
) -> None:
    trt = fake_tensorrt("11.4.0.1", cuda)
    spec = engine_spec(trt, bundle, "fp32", ORIN)
    ensure_engine(trt, spec)
    trt.calls.clear()
    assert (
        load_engine(trt, trt.Runtime(None), spec).plan == b"plan:11.4.0.1:Orin (nvgpu):model.onnx"
    )
    assert [c[0] for c in trt.calls] == ["deserialize_cuda_engine"]


def test_build_engine_cli(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    spec = engine_spec(trt, bundle, "fp16", ORIN)

    assert engine_cli.main([str(bundle.path), "--print-trtexec", "--workspace-mib", "512"]) == 0
    assert trtexec_command(spec, 512) in capsys.readouterr().out
    assert calls(trt, "build_serialized_network") == []

    assert engine_cli.main([str(bundle.path)]) == 0
    assert f"built: {spec.plan_path}" in capsys.readouterr().out
    assert engine_cli.main([str(bundle.path)]) == 0
    assert f"already cached: {spec.plan_path}" in capsys.readouterr().out
    assert len(calls(trt, "build_serialized_network")) == 1

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert engine_cli.main([str(bundle.path)]) == 1
    assert "ssma-build-engine: TensorRT not importable: on Jetson" in capsys.readouterr().err


def test_backend_with_tensorrt_but_no_gpu(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0.30", FakeCuda()))
    with pytest.raises(
        BackendUnavailable, match=r"no CUDA GPU visible to torch .*is_available\(\) is False"
    ):
        load_backend(bundle, backend="tensorrt")
    backend, reason = load_backend(bundle)
    assert backend.name == "onnxruntime"
    assert "skipped tensorrt on cuda:0: no CUDA GPU visible to torch" in reason


# ------------------------------------------------------------------------------------------------
# The device the engine is built on, and the backend that serves it


def test_fp32_engines_compute_in_fp32_not_tf32(bundle: Bundle, cuda: FakeCuda) -> None:
    for version in ("10.3.0.30", "11.4.0.1"):
        trt = fake_tensorrt(version, cuda)
        ensure_engine(trt, engine_spec(trt, bundle, "fp32", ORIN))
        ensure_engine(trt, engine_spec(trt, bundle, "fp16", ORIN))
        assert calls(trt, "clear_flag") == [("clear_flag", "TF32")]  # the fp32 build only


def test_cli_builds_on_the_device_it_names_and_the_backend_there_loads_it(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    assert engine_cli.main([str(bundle.path), "--device", "1"]) == 0
    spec = engine_spec(trt, bundle, "fp16", RTX)
    assert "--device=1 " in capsys.readouterr().out
    assert calls(trt, "build_serialized_network") == [("build_serialized_network", 1)]
    assert spec.plan_path.read_bytes() == b"plan:10.3.0.30:NVIDIA GeForce RTX 4090:model.onnx"
    assert "--device 1" in spec.rebuild_command and cuda.current == 0  # restored afterwards

    backend = TensorRTBackend(bundle, "cuda:1", "fp16", allow_build=False)
    assert len(calls(trt, "build_serialized_network")) == 1  # served as built, not rebuilt
    assert calls(trt, "create_execution_context") == [("create_execution_context", 1)]
    assert {where for where, _ in cuda.allocations} == {"cuda:1", "pinned"}
    backend.close()


def test_a_plan_for_another_gpu_under_this_gpus_key_is_rebuilt_on_this_gpu(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = fake_tensorrt("10.3.0.30", cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    ensure_engine(trt, engine_spec(trt, bundle, "fp32", ORIN))  # built on device 0 ...
    rtx = engine_spec(trt, bundle, "fp32", RTX)
    (bundle.engines_dir / f"{engine_spec(trt, bundle, 'fp32', ORIN).key}.plan").rename(
        rtx.plan_path
    )  # ... and copied by hand under device 1's name, without a record
    backend = TensorRTBackend(bundle, "cuda:1", "fp32")
    assert calls(trt, "build_serialized_network") == [
        ("build_serialized_network", 0),
        ("build_serialized_network", 1),
    ]
    assert rtx.plan_path.read_bytes().startswith(b"plan:10.3.0.30:NVIDIA GeForce RTX 4090:")
    backend.close()


@pytest.mark.parametrize(
    ("version", "io_dtype"), [("10.3.0.30", torch.float32), ("11.4.0.1", torch.float16)]
)
def test_backend_buffers_are_in_the_engines_io_dtype(
    bundle: Bundle,
    cuda: FakeCuda,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
    io_dtype: torch.dtype,
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, cuda))
    backend, _ = load_backend(bundle, backend="tensorrt", precision="fp16")
    # TensorRT 11 fp16 engines take and give fp16: host and device buffers alike, no casts
    assert cuda.allocations == [("cuda:0", io_dtype), ("pinned", io_dtype)] * 3
    rng = np.random.default_rng(0)
    inputs = {n: rng.standard_normal(SHAPES[n]).astype(np.float32) for n in ("rgb", "aux")}
    logits = backend.infer(inputs)
    assert logits.dtype == np.float32 and logits.shape == SHAPES["logits"]
    as_io = {n: a.astype(str(io_dtype).removeprefix("torch.")) for n, a in inputs.items()}
    np.testing.assert_array_equal(logits, fake_network(**as_io).astype(np.float32))
    assert cuda.events == ["enqueue", "synchronize"]
    backend.close()


def test_a_failed_enqueue_waits_for_the_stream_before_raising(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "tensorrt", fake_tensorrt("10.3.0.30", cuda, enqueue_fails=True)
    )
    backend, _ = load_backend(bundle, backend="tensorrt")
    inputs = {n: np.zeros(SHAPES[n], np.float32) for n in ("rgb", "aux")}
    with pytest.raises(RuntimeError, match="TensorRT execute_async_v3 failed"):
        backend.infer(inputs)
    # the queued input copies are done before anyone may reuse the pinned buffers
    assert cuda.events == ["enqueue", "synchronize"]


def test_no_execution_context_is_a_clear_backend_unavailable(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0.30", cuda, no_context=True))
    with pytest.raises(
        BackendUnavailable, match="TensorRT could not create an execution context for .*plan"
    ):
        load_backend(bundle, backend="tensorrt")


def test_tensorrt_asked_for_by_name_fails_as_backend_unavailable(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    """segment_node stops with one clear line on BackendUnavailable; a build error is one too."""
    monkeypatch.setitem(
        sys.modules, "tensorrt", fake_tensorrt("10.3.0.30", cuda, build_fails=True)
    )
    with pytest.raises(BackendUnavailable, match="TensorRT could not build an engine"):
        load_backend(bundle, backend="tensorrt")
    with pytest.raises(BackendUnavailable, match="no usable TensorRT engine"):
        load_backend(bundle, backend="tensorrt", allow_build=False)


def test_onnxruntime_tensorrt_ep_engines_are_kept_per_tensorrt_version_and_gpu(
    bundle: Bundle, cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORT's TensorRT EP only rebuilds for a new graph: a stale plan must land in a new folder."""
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: [TRT_EP, "CPUExecutionProvider"]
    )
    folders = {}
    for version, device in (
        ("10.3.0.30", "cuda:0"),
        ("10.4.0.26", "cuda:0"),
        ("10.4.0.26", "cuda:1"),
    ):
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, cuda))
        # this onnxruntime has no TensorRT EP in truth: the session runs on the CPU, with a warning
        backend = OnnxRuntimeBackend(bundle, device, "fp16", threads=1)
        folders[version, device] = backend.cache_dir
        assert backend.cache_dir.is_dir()
        backend.close()
    assert len(set(folders.values())) == 3
    sha = bundle.files["model.onnx"][:16]
    assert folders["10.4.0.26", "cuda:1"].name == (
        f"{sha}_ort{onnxruntime.__version__}_trt10.4.0.26_nvidia-geforce-rtx-4090_sm89"
    )
