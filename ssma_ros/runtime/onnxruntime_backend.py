"""ONNX Runtime backend: TensorRT EP, CUDA EP or CPU, whichever this onnxruntime build offers.

`create_session` is the one place ONNX Runtime sessions are made (the node, ssma-bench and
ssma-prune's latency), so what is measured is what the node serves. fp32 is fp32 on the CUDA EP
(its TF32 is turned off); the TensorRT EP has no TF32 switch, so its fp32 may use TF32 on Ampere
and newer GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ssma_ros.bundle import RECOPY, Bundle, BundleError
from ssma_ros.runtime.base import (
    BackendUnavailable,
    Log,
    check_precision,
    default_logger,
    ordered_inputs,
    parse_device,
)
from ssma_ros.runtime.engine_cache import gpu_info, import_tensorrt, target_tag

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
GPU_EPS = (TRT_EP, CUDA_EP)


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(
            f"onnxruntime not importable ({exc}): pip install onnxruntime "
            "(CPU) or onnxruntime-gpu (CUDA and TensorRT providers)"
        ) from exc
    return onnxruntime


def why_unavailable(device_kind: str) -> str | None:
    """None when this backend can run on `device_kind` ('cpu'/'cuda') here, else the reason."""
    try:
        ort = _import_ort()
    except BackendUnavailable as exc:
        return str(exc)
    available = ort.get_available_providers()
    if device_kind == "cuda" and not any(p in available for p in GPU_EPS):
        return (
            f"onnxruntime {ort.__version__} has no GPU provider (available: {available}); "
            "install onnxruntime-gpu for CUDA"
        )
    return None


def create_session(onnx_path: str | Path, providers: Sequence[Any] = (CPU_EP,), threads: int = 0):
    """Open an InferenceSession with the node's options; `threads` 0 is one per physical core."""
    ort = _import_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # Idle pool threads sleep instead of spinning: on a robot the cores are shared with the
    # camera driver, the node's other worker and the consumers.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), sess_options=options, providers=list(providers))


def trt_ep_cache_dir(base: Path, onnx_sha256: str, ort_version: str, device_index: int) -> Path:
    """Name the TensorRT EP's engine folder under `base`.

    The EP rebuilds an engine only for a new graph, so the folder names everything else its plans
    are tied to: the weights (ONNX hash), onnxruntime, TensorRT and the GPU. Where TensorRT's
    Python module or torch is missing, that part reads "unknown".
    """
    try:
        trt_version = import_tensorrt().__version__
    except BackendUnavailable:
        trt_version = "unknown"
    try:
        gpu = gpu_info(device_index)
        target = target_tag(trt_version, gpu.name, gpu.compute_capability)
    except BackendUnavailable:
        target = target_tag(trt_version, "unknown", (0, 0))
    return base / f"{onnx_sha256[:16]}_ort{ort_version}_{target}"


def cuda_provider(index: int) -> tuple[str, dict[str, Any]]:
    """Configure the CUDA EP on device `index` to compute fp32 as fp32 (no TF32)."""
    return (CUDA_EP, {"device_id": index, "use_tf32": 0})


def providers_for(
    available: list[str], device: str, precision: str, cache_dir: Path | None
) -> list[Any]:
    """List providers in priority order (TensorRT, CUDA, CPU), filtered by what this build has.

    The TensorRT EP keeps its engines in `cache_dir` so the first-run build happens once.
    """
    kind, index = parse_device(device)
    wanted: list[Any] = []
    if kind == "cuda" and TRT_EP in available:
        wanted.append(
            (
                TRT_EP,
                {
                    "device_id": index,
                    "trt_fp16_enable": precision == "fp16",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache_dir),
                },
            )
        )
    if kind == "cuda":
        wanted.append(cuda_provider(index))
    wanted.append(CPU_EP)
    return [p for p in wanted if (p if isinstance(p, str) else p[0]) in available]


class OnnxRuntimeBackend:
    """The bundle's model.onnx in an ONNX Runtime session."""

    name = "onnxruntime"

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cuda:0",
        precision: str = "fp16",
        *,
        threads: int = 0,
        cache_dir: Path | None = None,
        logger: Log | None = None,
    ) -> None:
        ort = _import_ort()
        log = logger or default_logger()
        check_precision(precision)
        available = ort.get_available_providers()
        kind, index = parse_device(device)
        # Where the TensorRT EP keeps its engines; None when it is not used.
        self.cache_dir: Path | None = None
        if kind == "cuda" and TRT_EP in available:
            base = Path(cache_dir) if cache_dir is not None else bundle.engines_dir / "onnxruntime"
            self.cache_dir = trt_ep_cache_dir(
                base, bundle.files["model.onnx"], ort.__version__, index
            )
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        providers = providers_for(available, device, precision, self.cache_dir)
        try:
            self._session = create_session(bundle.onnx_path, providers, threads)
        except Exception as exc:  # ORT's Fail, InvalidGraph, InvalidProtobuf, EP failures, ...
            raise self._why_no_session(bundle, providers, threads, exc) from exc
        self._specs = bundle.inputs
        self._output = bundle.outputs[0].name

        # ORT silently drops a provider it cannot initialise (missing CUDA/cuDNN/TensorRT libs):
        # report what serves, not what was asked for.
        self.providers: list[str] = self._session.get_providers()
        serving = self.providers[0]
        asked = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if serving != asked:
            log.warning(
                f"onnxruntime fell back from {asked} to {serving} (its libraries failed to load; "
                "see the onnxruntime log above)"
            )
        if kind == "cuda" and serving == CPU_EP:
            log.warning(
                f"onnxruntime runs on the CPU although {device} was asked for "
                f"(available providers: {available})"
            )
        self.device = "cpu" if serving == CPU_EP else f"cuda:{index}"
        # Only the TensorRT EP lowers precision; CUDA and CPU EPs run the fp32 graph as is.
        self.precision = "fp16" if serving == TRT_EP and precision == "fp16" else "fp32"

    @staticmethod
    def _why_no_session(bundle: Bundle, providers, threads: int, exc: Exception) -> Exception:
        """Tell a model ONNX Runtime rejects from a GPU provider that failed to start.

        A GPU provider can fail at session creation (an engine build out of memory, broken
        CUDA libraries): the model is then fine, and `auto` may try the next backend. Only a
        model the CPU provider rejects too is the bundle's fault.
        """
        detail = f"{type(exc).__name__}: {str(exc).strip()}"
        if list(providers) != [CPU_EP]:
            try:
                create_session(bundle.onnx_path, [CPU_EP], threads)
            except Exception:
                pass  # the CPU rejects it too: the model's fault, below
            else:
                names = [p if isinstance(p, str) else p[0] for p in providers]
                return BackendUnavailable(f"onnxruntime with {names} failed to start ({detail})")
        return BundleError(f"{bundle.onnx_path} is rejected by onnxruntime ({detail}); {RECOPY}")

    def infer(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits (1, C, H, W) float32; see Backend.infer."""
        arrays = ordered_inputs(self._specs, inputs)
        feed = {spec.name: array for spec, array in zip(self._specs, arrays)}
        (logits,) = self._session.run([self._output], feed)
        return np.asarray(logits, dtype=np.float32)

    def close(self) -> None:
        """Drop the session."""
        self._session = None
