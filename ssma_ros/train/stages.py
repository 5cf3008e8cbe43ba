"""What differs between the three training stages (reference/ssma_paper.md §5).

- "expert": a unimodal AdapNet++ per modality, every parameter at the base lr.
- "fusion": a fused model whose streams start from the two experts (the model's
  `expert_prefixes` says which expert tensors go where), the streams at a lower lr than the
  fusion blocks and the decoder.
- "finetune": the streams frozen (no gradients, BatchNorm statistics fixed), the rest trained.

"Stream" here is what the released SSMA code calls the expert: encoder + eASPP + skip
projections (`optim.freeze: "encoder"` narrows freezing to the backbone alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ssma_ros.model.base import SegmentationModel
from ssma_ros.train.config import WARM_CHOICES


def unwrap(model: nn.Module) -> nn.Module:
    """Return the model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def expert_mapping(
    model: SegmentationModel,
    modality: str,
    expert_state: Mapping[str, torch.Tensor],
    warm: bool = False,
) -> dict[str, str]:
    """Expert state-dict key -> fused-model key for every expert tensor `model` takes."""
    prefixes = model.expert_prefixes(modality, warm=warm)
    if not prefixes:
        raise ValueError(
            f"arch {model.arch!r} cannot start from unimodal experts "
            "(train it with init.rgb/aux unset)"
        )
    mapping = {}
    for key in expert_state:
        for src, dst in prefixes.items():
            if key.startswith(src):
                mapping[key] = dst + key[len(src) :]
    return mapping


@torch.no_grad()
def load_expert(model: nn.Module, modality: str, expert: nn.Module, warm: bool = False) -> int:
    """Copy a trained unimodal AdapNet++ `expert` into the `modality` stream of a fused `model`.

    Parameters and BN buffers are copied exactly; with `warm`, also what a warm start takes (see
    `warm_start`). Returns the number of tensors copied. Every mapped tensor must exist with the
    same shape, and every tensor of the target stream must be covered, so an expert of another size
    or class count fails loudly instead of half-loading.
    """
    model = unwrap(model)
    arch = model.arch
    if getattr(expert, "arch", None) != "adapnet":
        raise ValueError(
            f"the {modality} expert must be an adapnet checkpoint, "
            f"got {getattr(expert, 'arch', None)!r}"
        )
    if getattr(expert, "modality", modality) != modality:
        raise ValueError(f"init.{modality} holds an expert trained on {expert.modality!r}")
    source = expert.state_dict()
    target = model.state_dict()
    mapping = expert_mapping(model, modality, source, warm)
    for src, dst in mapping.items():
        if dst not in target:
            raise ValueError(f"expert tensor {src} has no place {dst} in the {arch} model")
        if source[src].shape != target[dst].shape:
            raise ValueError(
                f"expert tensor {src} {tuple(source[src].shape)} does not fit {dst} "
                f"{tuple(target[dst].shape)}: model config or class count differ"
            )
    covered = set(mapping.values())
    stream_prefixes = tuple(model.expert_prefixes(modality, warm=warm).values())
    missing = [k for k in target if k.startswith(stream_prefixes) and k not in covered]
    if missing:
        raise ValueError(
            f"the {modality} expert lacks {len(missing)} tensors of the stream, e.g. {missing[:3]}"
        )
    for src, dst in mapping.items():
        target[dst].copy_(source[src])
    return len(mapping)


#: init.warm choices: start as the rgb expert, the aux expert, or the one validated better.


def warm_modality(choice: str, metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Pick the expert a warm start starts as.

    `choice` "rgb" or "aux" names it; "best" takes the expert whose checkpoint carries the higher
    mean validation mIoU (over its evaluation sets, blanked-aux sets aside). The validation
    split decides, never the test scenes. `metrics`: per modality, a checkpoint's "metrics".
    """
    if choice not in WARM_CHOICES:
        raise ValueError(f"init.warm: {choice!r} is not one of {list(WARM_CHOICES)}")
    if choice != "best":
        return choice

    def mean_miou(modality: str) -> float:
        values = [v for k, v in metrics[modality].items() if not k.endswith("_no_aux")]
        if not values:
            raise ValueError(
                f"init.warm: best: the {modality} expert's checkpoint has no validation metrics"
            )
        return sum(values) / len(values)

    return max(("rgb", "aux"), key=mean_miou)


def warm_start(model: nn.Module, modality: str, expert: nn.Module) -> int:
    """Start a fused model's fusion and decoder as its `modality` expert (stage 2, warm).

    Copies the expert's decoder (the tensors `expert_prefixes(modality, warm=True)` adds) and
    lets the model make its fusion pass that stream through, so that the fused model computes
    the expert's logits at step 0. Call after `load_expert` has loaded both streams. Returns
    the number of tensors copied.
    """
    model = unwrap(model)
    start_as = getattr(model, "start_as", None)
    if start_as is None:
        raise ValueError(f"init.warm: arch {model.arch!r} has no fusion to warm-start (ssma has)")
    count = load_expert(model, modality, expert, warm=True)
    start_as(modality)
    return count


@torch.no_grad()
def blend_other_stream(
    model: nn.Module, modality: str, batch: Mapping[str, torch.Tensor], share: float
) -> list[float]:
    """After `warm_start(model, modality, ...)`: mix the other stream in from step 0.

    A warm start passes one stream through and gives the other weight 0, so everything the
    other modality adds must be learned in stage 2. Here, at each fusion level, a least-squares
    affine map from the other stream's features onto the chosen stream's is fitted on `batch`
    (training inputs, streams in eval mode), and the fusion outputs (1 - share) x chosen +
    share x mapped other (`SSMABlock.blend`). Returns each level's R^2 of the fit.
    """
    model = unwrap(model)
    index = model.input_names.index(modality)
    was_training = model.training
    model.eval()
    features = [stream(batch[name]) for stream, name in zip(model.streams(), model.input_names)]
    model.train(was_training)
    fits = []
    for level, block in enumerate(model.fusion_blocks()):
        own, other = (f[level].double() for f in (features[index], features[1 - index]))
        y = own.permute(0, 2, 3, 1).reshape(-1, own.shape[1])
        x = other.permute(0, 2, 3, 1).reshape(-1, other.shape[1])
        # centred, so that the ridge (for channels that hardly vary) scales with the variance
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ xc
        ridge = 1e-3 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        solution = torch.linalg.solve(gram + ridge, xc.T @ yc)  # (C_other, C_own)
        weight, bias = solution.T, y_mean - x_mean @ solution
        residual = ((xc @ solution - yc) ** 2).sum() / (yc**2).sum()
        fits.append(float(1.0 - residual))
        block.blend(index, weight.float(), bias.float(), share)
    return fits


def stream_modules(model: nn.Module, freeze: str = "expert") -> list[nn.Module]:
    """Return the per-modality streams (freeze="expert") or their backbones ("encoder")."""
    modules = unwrap(model).streams()
    return [m.encoder for m in modules] if freeze == "encoder" else modules


def split_parameters(
    model: nn.Module, freeze: str = "expert"
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(stream parameters, all other parameters) of a model, each parameter in exactly one list."""
    stream = {id(p): p for m in stream_modules(model, freeze) for p in m.parameters()}
    rest = [p for p in unwrap(model).parameters() if id(p) not in stream]
    return list(stream.values()), rest


def freeze_streams(model: nn.Module, freeze: str = "expert") -> int:
    """Stop training the streams: no gradients, BN and dropout in eval mode.

    Returns the frozen parameter count. Call `set_train_mode` instead of `model.train()` afterwards
    so they stay so.
    """
    count = 0
    for module in stream_modules(model, freeze):
        for p in module.parameters():
            p.requires_grad_(False)
            count += p.numel()
        module.eval()
    return count


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Outermost sub-modules whose parameters (recursively) are all frozen."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(unwrap(model))
    return found


def set_train_mode(model: nn.Module, frozen: Sequence[nn.Module] | None = None) -> None:
    """Put `model` in train mode, except its frozen sub-modules.

    Those stay in eval mode, as in the released code's fixed experts: their BN keeps its running
    statistics (in train mode BN would still update them from each batch) and their dropout is off,
    so a frozen stream is a fixed function. `frozen`: `frozen_modules(model)` computed once
    (finding them walks the whole model).
    """
    model.train()
    for module in frozen_modules(model) if frozen is None else frozen:
        module.eval()
