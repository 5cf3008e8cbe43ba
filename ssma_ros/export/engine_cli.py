"""`ssma-build-engine`: build (or find in the cache) a bundle's TensorRT engine on this GPU.

A command line over ssma_ros.runtime.engine_cache, the cache the node's TensorRT backend reads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ssma_ros.bundle import BundleError, load_bundle
from ssma_ros.runtime.base import BackendUnavailable
from ssma_ros.runtime.engine_cache import (
    DEFAULT_WORKSPACE_MIB,
    engine_spec,
    ensure_engine,
    gpu_info,
    import_tensorrt,
    trtexec_command,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="ssma-build-engine", description=__doc__.splitlines()[0])
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
    parser.add_argument(
        "--device", type=int, default=0, help="CUDA device index to build on and for"
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when a cached engine matches"
    )
    parser.add_argument(
        "--print-trtexec",
        action="store_true",
        help="print the equivalent trtexec command and exit without building",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-build-engine; 0 when the engine is cached or built."""
    args = parse_args(argv)
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
    except (BundleError, BackendUnavailable) as exc:
        print(f"ssma-build-engine: {exc}", file=sys.stderr)
        return 1
    print(f"{'built' if built else 'already cached'}: {spec.plan_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
