"""TensorRT backend: a cached (or first-use built) engine, driven with torch CUDA buffers.

TensorRT 10 name-based I/O only (set_tensor_address + execute_async_v3), within the 10.3 API.
The backend owns its execution context, its CUDA stream and preallocated device and pinned host
buffers; calls to infer() are serialised because a context must not run on two threads at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ssma_ros.bundle import Bundle
from ssma_ros.export.tensorrt import (
    DEFAULT_WORKSPACE_MIB,
    EngineBuildError,
    EngineSpec,
    TensorRTUnavailable,
    engine_spec,
    ensure_engine,
    gpu_info,
    import_tensorrt,
    trt_logger,
)
from ssma_ros.runtime.base import (
    BackendUnavailable,
    Log,
    check_precision,
    default_logger,
    ordered_inputs,
    parse_device,
)

# TensorRT DataType name -> torch dtype name (trt.nptype has no bfloat16).
_TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT32": "int32",
    "INT64": "int64",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}


def why_unavailable(device: str) -> str | None:
    """None when TensorRT and a CUDA GPU are both here, else the reason."""
    kind, index = parse_device(device)
    if kind != "cuda":
        return f"TensorRT needs a CUDA GPU (device is {device})"
    try:
        import_tensorrt()
        gpu_info(index)
    except TensorRTUnavailable as exc:
        return str(exc)
    return None


def load_engine(
    trt: Any,
    runtime: Any,
    spec: EngineSpec,
    *,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    allow_build: bool = True,
    logger: Log | None = None,
) -> Any:
    """Deserialize the engine of `spec`, building it first when the cache has no matching plan.

    A cached plan TensorRT refuses (another TensorRT version or GPU, or a damaged file) is rebuilt
    once; a plan that still does not load is an error that says how to rebuild by hand.
    """
    log = logger or default_logger()
    built = ensure_engine(
        trt, spec, workspace_mib=workspace_mib, allow_build=allow_build, logger=log
    )
    engine = runtime.deserialize_cuda_engine(spec.plan_path.read_bytes())
    if engine is None and not built and allow_build:
        log.warning(
            f"TensorRT refused the cached engine {spec.plan_path} "
            "(another TensorRT version or GPU, or a damaged file); rebuilding it"
        )
        ensure_engine(trt, spec, workspace_mib=workspace_mib, force=True, logger=log)
        engine = runtime.deserialize_cuda_engine(spec.plan_path.read_bytes())
    if engine is None:
        raise EngineBuildError(
            f"TensorRT could not load the engine {spec.plan_path} (see its log above); "
            f"rebuild it with:\n  {spec.rebuild_command}"
        )
    return engine


class TensorRTBackend:
    name = "tensorrt"

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cuda:0",
        precision: str = "fp16",
        *,
        cache_dir: Path | None = None,
        allow_build: bool = True,
        workspace_mib: int = DEFAULT_WORKSPACE_MIB,
        logger: Log | None = None,
    ) -> None:
        log = logger or default_logger()
        self.precision = check_precision(precision)
        why = why_unavailable(device)
        if why is not None:
            raise BackendUnavailable(why)
        import torch

        trt = import_tensorrt()
        index = parse_device(device)[1]
        self.device = f"cuda:{index}"
        self._torch = torch
        self._cuda = torch.device("cuda", index)
        self._lock = threading.Lock()
        self._specs = bundle.inputs
        torch.cuda.init()  # torch creates the primary CUDA context first; TensorRT then shares it
        with torch.cuda.device(self._cuda):
            self.spec = engine_spec(trt, bundle, precision, gpu_info(index), cache_dir=cache_dir)
            self._runtime = trt.Runtime(trt_logger(trt))
            self._engine = load_engine(
                trt,
                self._runtime,
                self.spec,
                workspace_mib=workspace_mib,
                allow_build=allow_build,
                logger=log,
            )
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self._cuda)
            self._allocate(bundle, trt)
        log.info(
            f"TensorRT {trt.__version__} engine {self.spec.plan_path.name} ready on {self.device}"
        )

    def _allocate(self, bundle: Bundle, trt: Any) -> None:
        torch, engine = self._torch, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if sorted(inputs) != sorted(s.name for s in bundle.inputs) or len(outputs) != 1:
            raise EngineBuildError(
                f"engine {self.spec.plan_path} has inputs {inputs} and outputs {outputs}, "
                f"the bundle expects {[s.name for s in bundle.inputs]} -> logits; rebuild it "
                f"with:\n  {self.spec.rebuild_command}"
            )
        self._output = outputs[0]
        self._device_buffers: dict[str, Any] = {}
        self._host_buffers: dict[str, Any] = {}
        for name in names:
            shape = tuple(engine.get_tensor_shape(name))
            dtype = getattr(torch, _TORCH_DTYPES[engine.get_tensor_dtype(name).name])
            buffer = torch.empty(shape, dtype=dtype, device=self._cuda)
            self._device_buffers[name] = buffer
            # Pinned host memory makes the copies truly asynchronous and about twice as fast.
            self._host_buffers[name] = torch.empty(shape, dtype=torch.float32, pin_memory=True)
            self._context.set_tensor_address(name, buffer.data_ptr())

    def infer(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        arrays = ordered_inputs(self._specs, inputs)
        with self._lock, self._torch.cuda.stream(self._stream):
            for spec, array in zip(self._specs, arrays):
                host = self._host_buffers[spec.name]
                np.copyto(host.numpy(), array)
                self._device_buffers[spec.name].copy_(host, non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(
                    f"TensorRT execute_async_v3 failed for {self.spec.plan_path} (see its log)"
                )
            host_out = self._host_buffers[self._output]
            host_out.copy_(self._device_buffers[self._output], non_blocking=True)
            self._stream.synchronize()
            return host_out.numpy().copy()  # the pinned buffer is reused by the next call

    def close(self) -> None:
        with self._lock:
            self._stream.synchronize()
            self._context = None
            self._engine = None
            self._device_buffers.clear()
            self._host_buffers.clear()
