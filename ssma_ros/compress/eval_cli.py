"""`ssma-eval-bundle`: score an exported bundle the way the node serves it, on synthetic frames."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ssma_ros.compress.bundle_eval import evaluate_bundle, markdown
from ssma_ros.data import synthetic


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-eval-bundle."""
    parser = argparse.ArgumentParser(prog="ssma-eval-bundle", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle folder")
    parser.add_argument("--split", default="test", choices=sorted(synthetic.SPLITS))
    parser.add_argument("--first", type=int, default=0, help="first frame index within the split")
    parser.add_argument("--count", type=int, default=16, help="frames per condition")
    parser.add_argument(
        "--conditions", nargs="+", default=["clear"], choices=list(synthetic.CONDITIONS)
    )
    parser.add_argument(
        "--strength", type=float, default=1.0, help="strength of the adverse conditions"
    )
    parser.add_argument(
        "--no-rgb-only", action="store_true", help="skip the RGB-only (aux blanked) runs"
    )
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    try:
        scores = evaluate_bundle(
            args.bundle,
            split=args.split,
            first=args.first,
            count=args.count,
            conditions=args.conditions,
            strength=args.strength,
            rgb_only=not args.no_rgb_only,
            threads=args.threads,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"ssma-eval-bundle: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.bundle}: {args.split} frames {args.first}..{args.first + args.count - 1}, "
        f"strength {args.strength:g}, ONNX Runtime CPU, {args.threads} thread(s)"
    )
    print(markdown(scores), end="")
    print(f"median per frame (preprocessing + inference): {scores.latency_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
