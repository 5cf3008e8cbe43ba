"""The shipped bundles (models/default, models/rgbt): contents, size, accuracy as carded.

Accuracy runs through the node's own path (load_bundle -> load_backend onnxruntime -> Segmenter
with the shared Preprocess) on freshly rendered synthetic frames of the test split, which neither
training nor checkpoint selection ever saw, and must match the check figures of MODEL_CARD.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ssma_ros.bundle import load_bundle
from ssma_ros.data.synthetic import CLASSES
from ssma_ros.export.onnx import onnx_matches_torch
from ssma_ros.model.checkpoint import load_checkpoint

pytest.importorskip("onnxruntime")

from ssma_ros.evaluate import evaluate, synthetic_frames  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"
#: Shipped bundle -> (aux modality, aux encoding, the card's label of the fused figure).
SHIPPED = {"default": ("depth", "jet", "RGB-D"), "rgbt": ("infrared", "intensity", "RGB-T")}
MAX_BYTES = 10 * 1024 * 1024
#: The check frames of the card: test split scenes 2,000,000 .. 2,000,015, clear, at 240x320.
FIRST, COUNT = 0, 16
#: mIoU points the check may differ from the card: the frames and weights are fixed, so only
#: platform numerics (ONNX Runtime kernels, OpenCV resizing, numpy) can move the figure.
TOLERANCE = 1.5
#: Decoder width of the unpruned lite config: the side heads' input channels before pruning.
CONFIG_DECODER_WIDTH = 48


def card_figure(name: str, label: str) -> float:
    """A figure the bundle's card states as `check mIoU <label>: NN.N %`."""
    card = MODELS / name / "MODEL_CARD.md"
    match = re.search(rf"check mIoU {re.escape(label)}: ([0-9.]+) %", card.read_text())
    assert match, f"{card} states no 'check mIoU {label}: NN.N %'"
    return float(match.group(1))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundle_is_complete_small_and_carries_no_training_state(name: str) -> None:
    folder = MODELS / name
    bundle = load_bundle(folder)  # validates bundle.json and every file's sha256
    assert bundle.arch == "ssma" and [s.name for s in bundle.inputs] == ["rgb", "aux"]
    assert (bundle.height, bundle.width) == (240, 320)
    assert bundle.classes == CLASSES and bundle.void_indices == (0,)
    modality, encoding, _ = SHIPPED[name]
    assert (
        bundle.preprocess["aux"]["modality"] == modality
        and bundle.preprocess["aux"]["encoding"] == encoding
    )
    total = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    assert total <= MAX_BYTES, f"{name} bundle is {total / 2**20:.2f} MiB"
    assert bundle.checkpoint_path is not None
    record = torch.load(bundle.checkpoint_path, weights_only=True)
    assert record["pruned"] is True and "resume" not in record and "optimizer" not in record
    assert record["pruning"]["step"] >= 1
    assert (folder / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_and_gives_the_logits_of_the_shipped_onnx(name: str) -> None:
    """model.pt loads under today's names, side heads included, with the logits of model.onnx.

    Files written when the side heads were called decoder.aux_* load as well.
    """
    folder = MODELS / name
    model, _ = load_checkpoint(folder / "model.pt")
    state = torch.load(folder / "model.pt", weights_only=True)["model"]["full_state_dict"]
    for level in ("quarter", "eighth"):
        saved = state.get(f"decoder.aux_{level}.0") or state[f"decoder.side_{level}.0"]
        loaded = model.decoder.get_submodule(f"side_{level}.0")
        assert torch.equal(loaded.weight, saved["_parameters"]["weight"]), level
        assert loaded.in_channels == saved["in_channels"] < CONFIG_DECODER_WIDTH  # pruned
    g = torch.Generator().manual_seed(0)
    x = [torch.rand(1, 3, 240, 320, generator=g) for _ in range(2)]
    assert onnx_matches_torch(model, folder / "model.onnx", x, atol=1e-4) <= 1e-4


def card_check_miou(name: str, aux_blank: bool) -> float:
    """MIoU % of the card's check frames through ssma-eval's path (the node's)."""
    bundle = load_bundle(MODELS / name)
    frames = synthetic_frames(bundle, "test", FIRST, COUNT, ["clear"], 1.0)
    result, _ = evaluate(bundle, frames, dataset="card check", aux_blank=aux_blank, examples=0)
    return 100 * result.groups["clear"].miou


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundle_scores_what_its_card_states(name: str) -> None:
    fused, rgb_only = card_check_miou(name, False), card_check_miou(name, True)
    label = SHIPPED[name][2]
    assert abs(fused - card_figure(name, label)) <= TOLERANCE, f"{label} mIoU {fused:.2f}"
    assert abs(rgb_only - card_figure(name, "RGB-only")) <= TOLERANCE, f"RGB-only {rgb_only:.2f}"
    # The aux stream earns its place: blanking it must cost accuracy; RGB alone still segments.
    assert rgb_only < fused - 1.0
    assert rgb_only > 100 / len(CLASSES)
