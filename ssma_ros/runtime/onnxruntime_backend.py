"""ONNX Runtime backend: TensorRT EP, CUDA EP or CPU, whichever this onnxruntime build offers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

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


def providers_for(available: list[str], device: str, precision: str, cache_dir: Path) -> list[Any]:
    """Providers in priority order (TensorRT, CUDA, CPU) filtered by what this build has.

    The TensorRT EP keeps its engines in `cache_dir` so the first-run build happens once.
    """
    kind, index = parse_device(device)
    wanted: list[Any] = []
    if kind == "cuda":
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
        wanted.append((CUDA_EP, {"device_id": index}))
    wanted.append(CPU_EP)
    return [p for p in wanted if (p if isinstance(p, str) else p[0]) in available]


class OnnxRuntimeBackend:
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
        # ORT does not notice new weights under the same graph, nor a new ORT: one folder per both.
        base = Path(cache_dir) if cache_dir is not None else bundle.engines_dir / "onnxruntime"
        self.cache_dir = base / f"{bundle.files['model.onnx'][:16]}_ort{ort.__version__}"
        providers = providers_for(ort.get_available_providers(), device, precision, self.cache_dir)
        if any(not isinstance(p, str) and p[0] == TRT_EP for p in providers):
            self.cache_dir.mkdir(parents=True, exist_ok=True)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0: one per physical core (ORT default)
        # Idle pool threads sleep instead of spinning: on a robot the cores are shared with the
        # camera driver, the node's other worker and the consumers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(bundle.onnx_path), sess_options=options, providers=providers
            )
        except (
            Exception
        ) as exc:  # ORT's Fail, InvalidGraph, InvalidProtobuf, ...: the model's fault
            raise BundleError(
                f"{bundle.onnx_path} is rejected by onnxruntime ({type(exc).__name__}: "
                f"{str(exc).strip()}); {RECOPY}"
            ) from exc
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
        if parse_device(device)[0] == "cuda" and serving == CPU_EP:
            log.warning(
                f"onnxruntime runs on the CPU although {device} was asked for "
                f"(available providers: {ort.get_available_providers()})"
            )
        self.device = "cpu" if serving == CPU_EP else f"cuda:{parse_device(device)[1]}"
        # Only the TensorRT EP lowers precision; CUDA and CPU EPs run the fp32 graph as is.
        self.precision = "fp16" if serving == TRT_EP and precision == "fp16" else "fp32"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        arrays = ordered_inputs(self._specs, inputs)
        feed = {spec.name: array for spec, array in zip(self._specs, arrays)}
        (logits,) = self._session.run([self._output], feed)
        return np.asarray(logits, dtype=np.float32)

    def close(self) -> None:
        self._session = None
