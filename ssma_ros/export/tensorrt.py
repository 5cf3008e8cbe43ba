"""TensorRT engine builder and engine cache (CLI: ssma-build-engine).

Works with TensorRT 10.3 (JetPack 6; the API floor: nothing newer is used) and TensorRT 11:
- 10.x: FP16 comes from BuilderFlag.FP16 applied to the fp32 model.onnx (weak typing);
- 11.x: the FP16 flag is gone and every network is strongly typed, so FP16 comes from the
  bundle's model_fp16.onnx. The choice is made by feature detection, not by version number.

Engines are tied to the exact TensorRT version and GPU, so they are built on the target and cached
as <bundle>/engines/<key>.plan, the key naming the ONNX hash, TensorRT version, GPU and precision.
A JSON record next to each plan repeats its key; a plan whose record names another key is rebuilt,
never loaded.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ssma_ros.bundle import (
    ENGINES_DIR,
    ONNX_FILE,
    ONNX_FP16_FILE,
    Bundle,
    BundleError,
    load_bundle,
)

if TYPE_CHECKING:  # the runtime imports this module; only the type comes back the other way
    from ssma_ros.runtime.base import Log

TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
DEFAULT_WORKSPACE_MIB = 1024
TRT_MISSING = (
    "TensorRT not importable: on Jetson use the system Python with JetPack's python3-libnvinfer "
    "(venv --system-site-packages); on x86 pip install 'tensorrt-cu12>=10.3,<11'; "
    "or use backend onnxruntime"
)


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or the CUDA GPU it needs) is not there; the message says what to install."""


class EngineBuildError(RuntimeError):
    """An engine could not be parsed, built, written or loaded; the message says what to do."""


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(f"{TRT_MISSING} ({exc})") from exc
    return tensorrt


@functools.lru_cache(maxsize=None)
def trt_logger(trt: Any) -> Any:
    """One logger per process: TensorRT keeps it as a library-wide singleton."""
    return trt.Logger(trt.Logger.WARNING)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]


def gpu_info(index: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device `index`.

    Read through torch, which also owns the buffers.
    """
    try:
        import torch
    except ImportError as exc:
        raise TensorRTUnavailable(
            "the TensorRT path uses torch for CUDA buffers and the GPU name; torch is "
            f"not importable ({exc}): install torch (on Jetson NVIDIA's wheel)"
        ) from exc
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            f"no CUDA GPU visible to torch {torch.__version__} "
            "(torch.cuda.is_available() is False)"
        )
    if not 0 <= index < torch.cuda.device_count():
        raise TensorRTUnavailable(
            f"no CUDA device {index}: torch sees {torch.cuda.device_count()}"
        )
    props = torch.cuda.get_device_properties(index)
    return GpuInfo(index, props.name, (props.major, props.minor))


def _safe(text: str, limit: int = 48) -> str:
    """Lower-case [a-z0-9.-] only: safe in file names on every filesystem."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:limit] or "unknown"


def _target_tag(trt_version: str, gpu_name: str, compute_capability: tuple[int, int]) -> str:
    major, minor = compute_capability
    return f"trt{_safe(trt_version)}_{_safe(gpu_name)}_sm{int(major)}{int(minor)}"


def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    precision: str,
) -> str:
    """File-name-safe key of one engine, e.g. '3f2a9c0d1e4b5a6c_trt10.3.0.30_orin_sm87_fp16'."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", onnx_sha256):
        raise ValueError(f"onnx_sha256 must be hex digits, got {onnx_sha256!r}")
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    return (
        f"{onnx_sha256[:16]}_{_target_tag(trt_version, gpu_name, compute_capability)}_{precision}"
    )


def always_strongly_typed(trt: Any) -> bool:
    """Whether this TensorRT always builds strongly typed networks.

    TensorRT 11 dropped the FP16 builder flag: networks are strongly typed, precision is in the
    ONNX.
    """
    return not hasattr(trt.BuilderFlag, "FP16")


@dataclass(frozen=True)
class EngineSpec:
    """Everything that decides one engine.

    Which ONNX, how it is typed, and where the plan lives.
    """

    bundle_path: Path
    onnx_path: Path
    onnx_sha256: str
    precision: str
    strongly_typed: bool
    key: str
    plan_path: Path
    timing_cache: Path

    @property
    def record_path(self) -> Path:
        return self.plan_path.with_suffix(".json")

    @property
    def rebuild_command(self) -> str:
        command = (
            f"ssma-build-engine {shlex.quote(str(self.bundle_path))} --precision {self.precision}"
        )
        if self.plan_path.parent != self.bundle_path / ENGINES_DIR:
            command += f" --cache-dir {shlex.quote(str(self.plan_path.parent))}"
        return command + " --force"


def engine_spec(
    trt: Any,
    bundle: Bundle,
    precision: str,
    gpu: GpuInfo,
    *,
    cache_dir: Path | None = None,
    timing_cache: Path | None = None,
) -> EngineSpec:
    strongly_typed = always_strongly_typed(trt)
    onnx_name = ONNX_FILE
    if precision == "fp16" and strongly_typed:
        if bundle.onnx_fp16_path is None:
            raise EngineBuildError(
                f"TensorRT {trt.__version__} builds FP16 only from an FP16 ONNX and bundle "
                f"{bundle.path} has no {ONNX_FP16_FILE}: re-export it with ssma-export --fp16, "
                "or use --precision fp32"
            )
        onnx_name = ONNX_FP16_FILE
    sha = bundle.files[onnx_name]
    folder = Path(cache_dir) if cache_dir is not None else bundle.engines_dir
    key = engine_cache_key(sha, trt.__version__, gpu.name, gpu.compute_capability, precision)
    default_cache = (
        folder / f"timing_{_target_tag(trt.__version__, gpu.name, gpu.compute_capability)}.cache"
    )
    return EngineSpec(
        bundle.path,
        bundle.path / onnx_name,
        sha,
        precision,
        strongly_typed,
        key,
        folder / f"{key}.plan",
        Path(timing_cache) if timing_cache else default_cache,
    )


def trtexec_command(spec: EngineSpec, workspace_mib: int = DEFAULT_WORKSPACE_MIB) -> str:
    """The trtexec call that builds the same engine.

    For a verbose log, profiling or a shell-only target.
    """
    parts = [TRTEXEC, f"--onnx={spec.onnx_path}", f"--saveEngine={spec.plan_path}"]
    if spec.strongly_typed:
        parts.append("--stronglyTyped")
    elif spec.precision == "fp16":
        parts.append("--fp16")
    parts += [
        f"--memPoolSize=workspace:{workspace_mib}M",
        f"--timingCacheFile={spec.timing_cache}",
    ]
    return " ".join(shlex.quote(p) for p in parts)


def format_parser_errors(parser: Any, onnx_path: Path) -> str:
    lines = [f"TensorRT could not parse {onnx_path} ({parser.num_errors} error(s)):"]
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        lines.append(
            f"  node #{error.node()} {error.node_name()!r} ({error.node_operator()}): "
            f"{error.desc()}"
        )
    lines.append(
        "An operator TensorRT lacks must be rewritten in the PyTorch model; an input that must be "
        "constant can be fixed by constant folding (polygraphy surgeon sanitize --fold-constants)."
    )
    return "\n".join(lines)


def _atomic_write(path: Path, data: Any) -> None:
    """Write via a temporary file and rename, so a killed build never leaves a truncated plan."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    os.chmod(f.name, 0o644)  # readable by the node even when it runs as another user
    os.replace(f.name, path)


def build_engine(
    trt: Any,
    spec: EngineSpec,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    logger: Log | None = None,
) -> None:
    """Parse the ONNX, build the engine and write the plan, its record and the timing cache."""
    log = logger or logging.getLogger("ssma_ros.export.tensorrt")
    try:
        spec.plan_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineBuildError(
            f"cannot write engines to {spec.plan_path.parent} ({exc}); pass a writable "
            "--cache-dir (the node's cache_dir parameter)"
        ) from exc
    trt_log = trt_logger(trt)
    builder = trt.Builder(trt_log)
    flags = 0
    if spec.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_log)
    if not parser.parse_from_file(str(spec.onnx_path)):
        raise EngineBuildError(format_parser_errors(parser, spec.onnx_path))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if spec.precision == "fp16" and not spec.strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    old_cache = spec.timing_cache.read_bytes() if spec.timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(old_cache), False):
        log.warning(
            f"timing cache {spec.timing_cache} is from another GPU or TensorRT; starting a new one"
        )
        config.set_timing_cache(config.create_timing_cache(b""), False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(
            f"TensorRT could not build an engine from {spec.onnx_path} ({spec.precision}, "
            f"workspace {workspace_mib} MiB). This is most often GPU memory "
            '("Could not find any implementation" and "out of memory" in the log above): lower '
            "--workspace-mib, stop other GPU processes (on Jetson the GPU shares memory with the "
            "CPU: stop the ROS graph), or build FP16. For a verbose log run:\n  "
            f"{trtexec_command(spec, workspace_mib)} --verbose"
        )
    _atomic_write(spec.timing_cache, memoryview(config.get_timing_cache().serialize()))
    _atomic_write(spec.plan_path, memoryview(plan))
    record = {
        "key": spec.key,
        "onnx": spec.onnx_path.name,
        "onnx_sha256": spec.onnx_sha256,
        "tensorrt": trt.__version__,
        "precision": spec.precision,
        "strongly_typed": spec.strongly_typed,
        "workspace_mib": workspace_mib,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(spec.record_path, (json.dumps(record, indent=2) + "\n").encode())
    log.info(f"TensorRT engine written: {spec.plan_path}")


def cached_engine_problem(spec: EngineSpec) -> str | None:
    """None when the cached plan is the one `spec` asks for, else why it cannot be used."""
    if not spec.plan_path.is_file():
        return "not built yet"
    if not spec.record_path.is_file():
        # A plan saved under its key by the printed trtexec command: the name is the key, and
        # TensorRT itself refuses a plan from another version or GPU when it deserializes it.
        return None
    try:
        stored = json.loads(spec.record_path.read_text()).get("key")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return f"its record {spec.record_path.name} is unreadable"
    if stored != spec.key:
        return f"its record says it was built for {stored!r}, not {spec.key!r}"
    return None


def ensure_engine(
    trt: Any,
    spec: EngineSpec,
    *,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    force: bool = False,
    allow_build: bool = True,
    logger: Log | None = None,
) -> bool:
    """Make sure spec.plan_path holds the right engine; True when it was (re)built now."""
    log = logger or logging.getLogger("ssma_ros.export.tensorrt")
    problem = "rebuild forced" if force else cached_engine_problem(spec)
    if problem is None:
        log.info(f"TensorRT engine cache hit: {spec.plan_path}")
        return False
    if not allow_build:
        raise EngineBuildError(
            f"no usable TensorRT engine {spec.plan_path} ({problem}); build it with:\n  "
            f"{spec.rebuild_command}"
        )
    log.info(f"building TensorRT engine {spec.plan_path.name} ({problem}); this can take minutes")
    build_engine(trt, spec, workspace_mib, log)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ssma-build-engine",
        description=(
            "Build (or find in the cache) the TensorRT engine of a model bundle on this GPU."
        ),
    )
    parser.add_argument("bundle", type=Path, help="bundle folder (model.onnx + bundle.json)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument(
        "--workspace-mib",
        type=int,
        default=DEFAULT_WORKSPACE_MIB,
        help="builder workspace limit; lower it when the build runs out of memory",
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        help="timing cache file (default: one per TensorRT version and GPU in the cache dir)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="engine folder (default: BUNDLE/engines)"
    )
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when a cached engine matches"
    )
    parser.add_argument(
        "--print-trtexec",
        action="store_true",
        help="print the equivalent trtexec command and exit without building",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        bundle = load_bundle(args.bundle)
        trt = import_tensorrt()
        spec = engine_spec(
            trt,
            bundle,
            args.precision,
            gpu_info(args.device),
            cache_dir=args.cache_dir,
            timing_cache=args.timing_cache,
        )
        print(f"TensorRT {trt.__version__}, engine key {spec.key}")
        print(f"equivalent trtexec command:\n  {trtexec_command(spec, args.workspace_mib)}")
        if args.print_trtexec:
            return 0
        built = ensure_engine(trt, spec, workspace_mib=args.workspace_mib, force=args.force)
    except (BundleError, TensorRTUnavailable, EngineBuildError) as exc:
        print(f"ssma-build-engine: {exc}", file=sys.stderr)
        return 1
    print(f"{'built' if built else 'already cached'}: {spec.plan_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
