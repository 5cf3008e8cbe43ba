"""ssma-export: checkpoint -> model bundle.

The bundle is model.onnx [+ model_fp16.onnx] + model.pt + bundle.json.

The bundle carries what the checkpoint's meta says about serving the model (classes, palette,
void class, preprocess spec, metrics) and is only written after ONNX Runtime reproduced the
PyTorch logits on random inputs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ssma_ros.bundle import BundleError, read_onnx_io, write_bundle

VERIFY_ATOL = 1e-4  # max |onnxruntime - torch| on fp32 logits
REQUIRED_META = ("classes", "palette", "preprocess")


def _input_size(meta: dict[str, Any], height: int | None, width: int | None) -> tuple[int, int]:
    """--height/--width, else the network input size of the preprocess spec."""
    size = meta["preprocess"].get("input_size")
    if height is None or width is None:
        if not size:
            raise ValueError(
                "the checkpoint's preprocess spec has no input_size; pass --height and --width"
            )
        height, width = (height or size[0]), (width or size[1])
    if size and [height, width] != list(size):
        raise ValueError(
            f"--height/--width {height}x{width} differ from the preprocess input_size "
            f"{size[0]}x{size[1]} the model was trained with; the node resizes frames to the "
            "preprocess size, so export at that size"
        )
    return height, width


def export_bundle(
    checkpoint: str | Path,
    out: str | Path,
    *,
    height: int | None = None,
    width: int | None = None,
    opset: int = 18,
    fp16: bool = False,
    name: str | None = None,
) -> tuple[Path, float]:
    """Export `checkpoint` into the bundle folder `out`.

    Returns the folder and the verified max abs diff.
    """
    import torch

    from ssma_ros.export.onnx import export_onnx, onnx_matches_torch
    from ssma_ros.model.checkpoint import load_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    model, meta = load_checkpoint(checkpoint)
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(
            f"{checkpoint} has no {missing} in its meta; save it with "
            "save_checkpoint(..., classes=[...], palette=[[r, g, b], ...], "
            "preprocess=Preprocess(...).to_dict())"
        )
    height, width = _input_size(meta, height, width)

    with tempfile.TemporaryDirectory(prefix="ssma-export-") as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", height, width, opset=opset)
        inputs, _, _ = read_onnx_io(onnx_path)
        generator = torch.Generator().manual_seed(0)
        sample = [torch.randn(spec.shape, generator=generator) for spec in inputs]
        diff = onnx_matches_torch(model, onnx_path, sample, atol=VERIFY_ATOL)
        print(
            f"ssma-export: onnxruntime vs torch, fp32 logits: max abs diff {diff:.3g} "
            f"(limit {VERIFY_ATOL:g})"
        )
        fp16_path = None
        if fp16:
            fp16_path = export_onnx(
                model, Path(tmp) / "model_fp16.onnx", height, width, opset=opset, fp16=True
            )
            fp16_diff = onnx_matches_torch(model, fp16_path, sample, atol=None)
            print(
                f"ssma-export: fp16 ONNX vs torch fp32: max abs diff {fp16_diff:.3g} "
                "(for information)"
            )
        void = meta.get("void_index")
        training = {
            key: meta[key]
            for key in ("stage", "iteration", "modalities", "train_config")
            if key in meta
        }
        bundle = write_bundle(
            out,
            onnx_path,
            name=name or out.name,
            arch=str(model.arch),
            classes=meta["classes"],
            palette=meta["palette"],
            void_indices=[] if void is None else [void],
            preprocess=meta["preprocess"],
            onnx_fp16_path=fp16_path,
            checkpoint_path=checkpoint,
            training=training,
            metrics=meta.get("metrics", {}),
        )
    return bundle, diff


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ssma-export", description="Export a checkpoint as a verified model bundle."
    )
    parser.add_argument("checkpoint", type=Path, help="an ssma_ros checkpoint (ssma-train output)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument(
        "--height", type=int, default=None, help="network input height (default: preprocess spec)"
    )
    parser.add_argument(
        "--width", type=int, default=None, help="network input width (default: preprocess spec)"
    )
    parser.add_argument(
        "--opset", type=int, default=18, help="ONNX opset (18-20; TensorRT 10.3 reads up to 20)"
    )
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="also write model_fp16.onnx (what TensorRT 11 needs to build FP16 engines)",
    )
    parser.add_argument("--name", default=None, help="bundle name (default: the folder name)")
    args = parser.parse_args(argv)
    try:
        bundle, _ = export_bundle(
            args.checkpoint,
            args.out,
            height=args.height,
            width=args.width,
            opset=args.opset,
            fp16=args.fp16,
            name=args.name,
        )
    except (ValueError, AssertionError, BundleError, FileNotFoundError) as exc:
        print(f"ssma-export: {exc}", file=sys.stderr)
        return 1
    print(f"ssma-export: bundle written to {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
