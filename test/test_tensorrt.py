"""TensorRT engine builder, cache and backend logic, against a FAKE `tensorrt` module.

There is no GPU or TensorRT here. The fake mimics the documented TensorRT 10.3 / 11 Python API
surface the code uses (reference/tensorrt_notes.md §1) and records what it was asked to do, so
these tests check our decisions (flags, typing, which ONNX, cache keys, error text), not TensorRT.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ssma_ros.bundle import Bundle, load_bundle, write_bundle
from ssma_ros.data.preprocess import Preprocess
from ssma_ros.export import tensorrt as trt_export
from ssma_ros.export.tensorrt import (
    EngineBuildError,
    GpuInfo,
    engine_cache_key,
    engine_spec,
    ensure_engine,
    trtexec_command,
)
from ssma_ros.runtime import BackendUnavailable, load_backend
from ssma_ros.runtime.tensorrt_backend import load_engine

ORIN = GpuInfo(0, "Orin (nvgpu)", (8, 7))
SHA = "0123456789abcdef" + "f" * 48


# ------------------------------------------------------------------------------------------------
# The fake TensorRT


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


def fake_tensorrt(
    version: str, *, parse_errors: tuple[ParserError, ...] = (), build_fails: bool = False
) -> types.ModuleType:
    """A `tensorrt` module of `version` ("10.3.0.30" has BuilderFlag.FP16, "11.x" does not).

    `trt.calls` records the API calls. Plans are b"plan:<version>:<onnx file name>", and the
    runtime only deserializes plans of its own version, as real TensorRT refuses another
    version's plan.
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
            trt.calls.append(("build_serialized_network",))
            return None if build_fails else f"plan:{version}:{network.onnx}".encode()

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

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> object | None:
            trt.calls.append(("deserialize_cuda_engine",))
            return ("engine", plan) if plan.startswith(f"plan:{version}:".encode()) else None

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


def test_trtexec_command_trt10_uses_the_fp16_flag_on_the_fp32_onnx(bundle: Bundle) -> None:
    spec = engine_spec(fake_tensorrt("10.3.0.30"), bundle, "fp16", ORIN)
    command = trtexec_command(spec, workspace_mib=512)
    engines = bundle.engines_dir
    assert command == (
        f"/usr/src/tensorrt/bin/trtexec --onnx={bundle.path}/model.onnx "
        f"--saveEngine={engines}/{spec.key}.plan --fp16 --memPoolSize=workspace:512M "
        f"--timingCacheFile={engines}/timing_trt10.3.0.30_orin-nvgpu_sm87.cache"
    )
    assert "--fp16" not in trtexec_command(
        engine_spec(fake_tensorrt("10.3.0.30"), bundle, "fp32", ORIN)
    )


def test_trtexec_command_trt11_is_strongly_typed_on_the_fp16_onnx(bundle: Bundle) -> None:
    spec = engine_spec(fake_tensorrt("11.4.0.1"), bundle, "fp16", ORIN)
    command = trtexec_command(spec)
    assert f"--onnx={bundle.path}/model_fp16.onnx" in command
    assert "--stronglyTyped" in command and "--fp16" not in command
    assert "--memPoolSize=workspace:1024M" in command
    assert spec.key.startswith(bundle.files["model_fp16.onnx"][:16])


def test_trt10_fp16_build_sets_the_fp16_flag_and_writes_plan_record_and_timing_cache(
    bundle: Bundle,
) -> None:
    trt = fake_tensorrt("10.3.0.30")
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    assert ensure_engine(trt, spec, workspace_mib=256) is True
    assert calls(trt, "create_network") == [("create_network", 0)]  # weakly typed, explicit batch
    assert calls(trt, "parse_from_file") == [("parse_from_file", "model.onnx")]
    assert calls(trt, "set_flag") == [("set_flag", "FP16")]
    assert calls(trt, "set_memory_pool_limit") == [
        ("set_memory_pool_limit", "WORKSPACE", 256 << 20)
    ]
    assert spec.plan_path.read_bytes() == b"plan:10.3.0.30:model.onnx"
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


def test_trt11_fp16_build_is_strongly_typed_from_the_fp16_onnx(bundle: Bundle) -> None:
    trt = fake_tensorrt("11.4.0.1")
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    ensure_engine(trt, spec)
    assert calls(trt, "create_network") == [("create_network", 1 << 1)]  # 1 << STRONGLY_TYPED
    assert calls(trt, "parse_from_file") == [("parse_from_file", "model_fp16.onnx")]
    assert calls(trt, "set_flag") == []
    assert spec.plan_path.read_bytes() == b"plan:11.4.0.1:model_fp16.onnx"


def test_trt11_fp16_without_an_fp16_onnx_says_how_to_get_one(
    bundle: Bundle, tmp_path: Path
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
        engine_spec(fake_tensorrt("11.4.0.1"), fp32_only, "fp16", ORIN)
    assert (
        engine_spec(fake_tensorrt("11.4.0.1"), fp32_only, "fp32", ORIN).onnx_path.name
        == "model.onnx"
    )


def test_parser_errors_name_the_node_and_operator(bundle: Bundle) -> None:
    trt = fake_tensorrt(
        "10.3.0.30",
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


def test_a_failed_build_points_at_memory_and_workspace(bundle: Bundle) -> None:
    trt = fake_tensorrt("10.3.0.30", build_fails=True)
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    with pytest.raises(EngineBuildError) as err:
        ensure_engine(trt, spec, workspace_mib=2048)
    text = str(err.value)
    assert "could not build an engine" in text and "workspace 2048 MiB" in text
    assert "most often GPU memory" in text and "lower --workspace-mib" in text
    assert trtexec_command(spec, 2048) + " --verbose" in text
    assert not spec.plan_path.exists() and not spec.record_path.exists()


def test_cache_hit_does_not_rebuild(bundle: Bundle) -> None:
    trt = fake_tensorrt("10.3.0.30")
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


def test_a_plan_whose_record_names_another_key_is_rebuilt_not_loaded(bundle: Bundle) -> None:
    trt = fake_tensorrt("10.3.0.30")
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    spec.plan_path.parent.mkdir(parents=True)
    spec.plan_path.write_bytes(b"someone else's plan")
    spec.record_path.write_text(
        json.dumps({"key": "0000000000000000_trt10.3.0.30_orin-nvgpu_sm87_fp32"})
    )
    assert ensure_engine(trt, spec) is True
    assert spec.plan_path.read_bytes() == b"plan:10.3.0.30:model.onnx"
    assert json.loads(spec.record_path.read_text())["key"] == spec.key


def test_without_building_a_missing_engine_is_an_error_that_says_how_to_build(
    bundle: Bundle,
) -> None:
    trt = fake_tensorrt("10.3.0.30")
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    with pytest.raises(EngineBuildError) as err:
        ensure_engine(trt, spec, allow_build=False)
    assert f"no usable TensorRT engine {spec.plan_path} (not built yet); build it with:" in str(
        err.value
    )
    assert f"ssma-build-engine {bundle.path} --precision fp16 --force" in str(err.value)


def test_load_engine_rebuilds_a_cached_plan_that_tensorrt_refuses(bundle: Bundle) -> None:
    trt = fake_tensorrt("10.3.0.30")
    spec = engine_spec(trt, bundle, "fp16", ORIN)
    spec.plan_path.parent.mkdir(parents=True)
    spec.plan_path.write_bytes(
        b"plan:10.2.0.19:model.onnx"
    )  # e.g. left by trtexec of another TensorRT
    engine = load_engine(trt, trt.Runtime(None), spec)
    assert engine == ("engine", b"plan:10.3.0.30:model.onnx")
    assert len(calls(trt, "build_serialized_network")) == 1

    spec.plan_path.write_bytes(b"plan:10.2.0.19:model.onnx")
    with pytest.raises(
        EngineBuildError,
        match=r"could not load the engine .*rebuild it with:\n  ssma-build-engine",
    ):
        load_engine(trt, trt.Runtime(None), spec, allow_build=False)


def test_load_engine_from_the_cache_deserializes_without_building(bundle: Bundle) -> None:
    trt = fake_tensorrt("11.4.0.1")
    spec = engine_spec(trt, bundle, "fp32", ORIN)
    ensure_engine(trt, spec)
    trt.calls.clear()
    assert load_engine(trt, trt.Runtime(None), spec) == ("engine", b"plan:11.4.0.1:model.onnx")
    assert [c[0] for c in trt.calls] == ["deserialize_cuda_engine"]


def test_build_engine_cli(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    trt = fake_tensorrt("10.3.0.30")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_export, "gpu_info", lambda index: ORIN)
    spec = engine_spec(trt, bundle, "fp16", ORIN)

    assert trt_export.main([str(bundle.path), "--print-trtexec", "--workspace-mib", "512"]) == 0
    assert trtexec_command(spec, 512) in capsys.readouterr().out
    assert calls(trt, "build_serialized_network") == []

    assert trt_export.main([str(bundle.path)]) == 0
    assert f"built: {spec.plan_path}" in capsys.readouterr().out
    assert trt_export.main([str(bundle.path)]) == 0
    assert f"already cached: {spec.plan_path}" in capsys.readouterr().out
    assert len(calls(trt, "build_serialized_network")) == 1

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert trt_export.main([str(bundle.path)]) == 1
    assert "ssma-build-engine: TensorRT not importable: on Jetson" in capsys.readouterr().err


def test_backend_with_tensorrt_but_no_gpu(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0.30"))
    with pytest.raises(
        BackendUnavailable, match=r"no CUDA GPU visible to torch .*is_available\(\) is False"
    ):
        load_backend(bundle, backend="tensorrt")
    backend, reason = load_backend(bundle)
    assert backend.name == "onnxruntime"
    assert "skipped tensorrt on cuda:0: no CUDA GPU visible to torch" in reason
