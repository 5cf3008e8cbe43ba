"""ONNX export of the segmentation networks, and a check of the file against PyTorch.

Exporter choice: the dynamo exporter (torch.export + onnxscript), because the TorchScript
exporter is deprecated and slated for removal in the torch we use (2.13), and because it gives a
clean graph for this network (Conv, ConvTranspose, BatchNormalization, Relu, Sigmoid, Mul, Add,
Concat, MaxPool, ReduceMean with constant axes, Expand) - every op in onnx-tensorrt's list for
TensorRT 10.3. Opset 18 is what the dynamo exporter builds natively; asking it for 17 runs a
down-conversion that fails on ReduceMean's axes input, and TensorRT 10.3 parses opsets 9-20, so 18
is the default (19 and 20 are accepted). The IR version is lowered to the oldest one that
supports the opset (8 for opset 18): new `onnx` writes IR 10/11, which older parsers and ONNX
Runtime builds reject (reference/tensorrt_notes.md §2.1), and this graph needs no newer IR
feature; onnx.checker verifies the result. Weights are embedded (external_data=False): even full
SSMA (~225 MB in FP32) is far below the 2 GB protobuf limit, and one file is easier to hash and
ship.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ssma_ros.bundle import OUTPUT_NAME
from ssma_ros.model.base import OUT
from ssma_ros.model.info import example_inputs

SUPPORTED_OPSETS = (18, 19, 20)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    height: int,
    width: int,
    opset: int = 18,
    fp16: bool = False,
    dynamic_hw: bool = False,
    input_names: Sequence[str] | None = None,
) -> Path:
    """Export `model` (built by `build_model`) for batch 1 at height x width to one .onnx file.

    Inputs are named after `model.input_names` ("rgb", or "rgb" and "aux"; a unimodal model's
    single input may be renamed with `input_names`), the output is "logits" (1, C, H, W).
    fp16: weights, inputs and output in float16, for strongly typed TensorRT builds.
    dynamic_hw: height and width become symbolic (multiples of 16), batch stays 1.
    The model is not modified (its train/eval mode is restored; fp16 works on a copy).
    """
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(
            f"opset {opset} not supported; use one of {SUPPORTED_OPSETS} (see the module doc)"
        )
    names = list(input_names) if input_names is not None else list(model.input_names)
    if len(names) != len(model.input_names):
        raise ValueError(f"model takes {len(model.input_names)} inputs, got names {names}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    dtype = torch.float16 if fp16 else torch.float32
    net = copy.deepcopy(model).to(dtype) if fp16 else model
    args = tuple(x.to(dtype) for x in example_inputs(model, height, width))
    dynamic_shapes = None
    if dynamic_hw:
        # Derived dims keep the multiple-of-16 constraint visible to torch.export.
        h16, w16 = torch.export.Dim("h16", min=1, max=512), torch.export.Dim("w16", min=1, max=512)
        dynamic_shapes = tuple({2: 16 * h16, 3: 16 * w16} for _ in args)

    was_training = model.training
    net.eval()
    try:
        program = _quiet_export(net, args, names, opset, dynamic_shapes)
    finally:
        model.train(was_training)

    proto = program.model_proto
    oldest = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    proto.ir_version = min(proto.ir_version, oldest)
    props = {p.key: p.value for p in proto.metadata_props}  # keep what the exporter wrote
    props.update(
        {
            "ssma_ros.arch": str(model.arch),
            "ssma_ros.num_classes": str(model.num_classes),
            "ssma_ros.precision": "fp16" if fp16 else "fp32",
        }
    )
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path))
    return path


def onnx_matches_torch(
    model: nn.Module,
    onnx_path: str | Path,
    inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    atol: float | None = 1e-4,
) -> float:
    """Max absolute difference of the logits of the ONNX file and the model on the same inputs.

    Runs the ONNX file in a real onnxruntime session and the model in eval mode (float32) on the
    same inputs (a sequence in forward order, or a mapping keyed by the file's input names).
    Raises AssertionError when the difference exceeds `atol` (pass None to only measure). Inputs
    are cast to the file's input dtypes.
    """
    from ssma_ros.runtime.onnxruntime_backend import create_session  # not needed for export

    session = create_session(onnx_path)
    if isinstance(inputs, Mapping):  # by the file's input names, in the file's (= forward) order
        tensors = [inputs[meta.name] for meta in session.get_inputs()]
    else:
        tensors = list(inputs)
    feeds = {}
    for meta, tensor in zip(session.get_inputs(), tensors):
        np_dtype = np.float16 if meta.type == "tensor(float16)" else np.float32
        feeds[meta.name] = tensor.detach().cpu().numpy().astype(np_dtype)
    onnx_out = session.run([OUTPUT_NAME], feeds)[0].astype(np.float32)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            torch_out = model(*(t.to(device=device, dtype=torch.float32) for t in tensors))[OUT]
    finally:
        model.train(was_training)
    torch_np = torch_out.float().cpu().numpy()
    if torch_np.shape != onnx_out.shape:
        raise AssertionError(f"shape mismatch: torch {torch_np.shape}, onnx {onnx_out.shape}")
    diff = float(np.max(np.abs(torch_np - onnx_out)))
    if atol is not None and diff > atol:
        raise AssertionError(f"ONNX output differs from PyTorch by {diff:.3g} > atol {atol:g}")
    return diff


def _quiet_export(
    net: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    opset: int,
    dynamic_shapes: tuple | None,
) -> torch.onnx.ONNXProgram:
    # The exporter logs and warns about things that are noise here (torchvision ops not
    # installed, torch-internal deprecations, names of derived dynamic dims).
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
            return torch.onnx.export(
                net,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    finally:
        logger.setLevel(level)
