"""`load_backend`: pick and start the inference backend for a bundle, and say why that one."""

from __future__ import annotations

from pathlib import Path

from ssma_ros.bundle import Bundle, BundleError
from ssma_ros.runtime import onnxruntime_backend, tensorrt_backend, torch_backend
from ssma_ros.runtime.base import (
    Backend,
    BackendUnavailable,
    Log,
    check_precision,
    default_logger,
    parse_device,
)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def _why_unavailable(name: str, bundle: Bundle, device: str) -> str | None:
    if name == "tensorrt":
        return tensorrt_backend.why_unavailable(device)
    if name == "onnxruntime":
        return onnxruntime_backend.why_unavailable(parse_device(device)[0])
    return torch_backend.why_unavailable(bundle, parse_device(device)[0])


def _create(
    name: str,
    bundle: Bundle,
    device: str,
    precision: str,
    log: Log,
    threads: int,
    cache_dir: Path | None,
    allow_build: bool,
) -> Backend:
    if name == "tensorrt":
        return tensorrt_backend.TensorRTBackend(
            bundle, device, precision, cache_dir=cache_dir, allow_build=allow_build, logger=log
        )
    if name == "onnxruntime":
        ort_cache = cache_dir / "onnxruntime" if cache_dir is not None else None
        return onnxruntime_backend.OnnxRuntimeBackend(
            bundle, device, precision, threads=threads, cache_dir=ort_cache, logger=log
        )
    return torch_backend.TorchBackend(bundle, device, precision, threads=threads, logger=log)


def load_backend(
    bundle: Bundle,
    backend: str = "auto",
    device: str = "cuda:0",
    precision: str = "fp16",
    logger: Log | None = None,
    *,
    threads: int = 0,
    cache_dir: Path | None = None,
    allow_build: bool = True,
) -> tuple[Backend, str]:
    """Start a backend for `bundle`; returns it and a one-line reason (also logged).

    backend: "auto" tries TensorRT, then ONNX Runtime on the GPU, then PyTorch on the GPU, then
    ONNX Runtime and PyTorch on the CPU, and reports why each earlier one was skipped. A named
    backend must start (BackendUnavailable otherwise), though ONNX Runtime and PyTorch fall back to
    the CPU with a warning when the GPU is missing. precision: "fp16" where the device supports it,
    else fp32; the backend's `precision` says what it really runs. threads: CPU intra-op threads
    (0 = library default). cache_dir: engine folder (default: the bundle's engines/, which must be
    writable). allow_build: let TensorRT build a missing engine now (minutes on a Jetson).

    A model file the backend rejects (model.onnx refused by onnxruntime, a model.pt that is not
    a checkpoint) is a BundleError under every choice, auto included: another backend would
    serve another file than the one that failed.
    """
    log = logger or default_logger()
    check_precision(precision)
    kind, _ = parse_device(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")

    if backend != "auto":
        instance = _create(
            backend, bundle, device, precision, log, threads, cache_dir, allow_build
        )
        reason = f"backend {backend} as requested, on {instance.device} ({instance.precision})"
        if parse_device(instance.device)[0] != kind:
            reason += f" instead of {device}: no usable GPU for it here"
        log.info(reason)
        return instance, reason

    candidates = (
        [("tensorrt", device), ("onnxruntime", device), ("torch", device)]
        if kind == "cuda"
        else []
    )
    candidates += [("onnxruntime", "cpu"), ("torch", "cpu")]
    skipped = []
    for name, candidate_device in candidates:
        why = _why_unavailable(name, bundle, candidate_device)
        if why is None:
            try:
                instance = _create(
                    name, bundle, candidate_device, precision, log, threads, cache_dir, allow_build
                )
            except BundleError:
                raise  # a corrupt model is refused, never silently replaced by another backend
            except Exception as exc:  # auto keeps the robot running: note it, try the next one
                why = f"failed to start ({type(exc).__name__}: {exc})"
            else:
                if parse_device(instance.device)[0] == parse_device(candidate_device)[0]:
                    reason = f"auto chose {name} on {instance.device} ({instance.precision})"
                    if skipped:
                        reason += "; skipped " + "; ".join(skipped)
                    log.info(reason)
                    return instance, reason
                instance.close()
                why = "its GPU provider failed to load (it would run on the CPU)"
        skipped.append(f"{name} on {candidate_device}: {why}")
    raise BackendUnavailable(
        f"no backend can run bundle {bundle.name}:\n  - " + "\n  - ".join(skipped)
    )
