"""Structured channel pruning of AdapNet++ / SSMA networks (reference/ssma_paper.md §7).

Torch-Pruning (DepGraph) removes whole channels and everything coupled to them: a residual
stream is one group (every conv3, shortcut, pre-activation BN and stage-end BN that reads or
writes it), a `torch.cat` maps its inputs' channels to offsets of its output, and an
element-wise product couples its operands. For the SSMA block that means: the gate conv `up`
(2C outputs), the sigmoid, the product `x * s`, the concatenation of the two experts' features
that forms `x`, the reduction conv `down` (inputs) and the projection (inputs) fall into one
group, in which channel i of the RGB expert's output is channel i of the gate and channel C+j
of the aux expert's output is channel C+j of the gate. That is the right coupling: the gate is
per channel (not broadcast), so dropping an input channel drops exactly its gate channel.
`masked_reference` builds the same network unpruned with the removed channels masked out,
which tests use to check the coupling end to end.

Importance is Torch-Pruning's GroupTaylorImportance, the first-order Taylor criterion
(|weight x gradient| summed over each channel's weights, over every layer of the group), a
weight-space form of the paper's activation x gradient oracle. Each group's scores are divided
by their mean, and with global pruning one threshold is set over all groups, much like the
paper's per-layer normalised scores and a single threshold.

Not pruned (their output channels are fixed by something outside the network):
  - the classifier (last 1x1 conv of the decoder) and the x4 transposed conv after it: their
    outputs are the class scores;
  - the side heads: class scores too (training only, but fine-tuning trains them);
  - the input BatchNorm of each encoder stem: its channels are the sensor's image channels.
Their input channels are still pruned with the layers that feed them. Unlike the released code,
the eASPP image-pooling conv and the skip projections are prunable here: they are ordinary
groups for DepGraph and the Taylor scores decide whether they keep their width.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ssma_ros.model.backbone import Encoder
from ssma_ros.model.decoder import Decoder

#: Why each kind of excluded layer keeps its output channels.
EXCLUDED_REASONS = {
    "classifier": "its output channels are the class scores",
    "upsample_x4": "transposed conv from class scores to class scores",
    "side_head": "deep-supervision head: its output channels are the class scores",
    "input_bn": "input normalisation: its channels are the sensor's image channels",
}

#: A batch for importance estimation and fine-tuning: network inputs in forward order and labels.
Batch = tuple[Sequence[torch.Tensor], torch.Tensor]


def excluded_layers(model: nn.Module) -> dict[str, str]:
    """Module name -> reason (a key of EXCLUDED_REASONS) for every layer whose output channels
    must keep their count.
    """
    excluded: dict[str, str] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, Decoder):
            excluded[f"{prefix}refine_quarter.{len(module.refine_quarter) - 1}.0"] = "classifier"
            excluded[f"{prefix}up_full.0"] = "upsample_x4"
            excluded[f"{prefix}side_quarter.0"] = "side_head"
            excluded[f"{prefix}side_eighth.0"] = "side_head"
        elif isinstance(module, Encoder):
            excluded[f"{prefix}stem.0"] = "input_bn"
    return excluded


@contextmanager
def frozen_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Train-mode forward (the decoder returns its side heads too) with BatchNorm and
    dropout in eval mode, so that tracing and importance batches leave the BN statistics and
    the outputs deterministic. Every module's mode is restored on exit.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _trace_forward(model: nn.Module, inputs: Sequence[torch.Tensor]) -> object:
    # Torch-Pruning traces in eval mode, where the side heads are not run: they would be left
    # out of the graph and keep input channels that their producers no longer have.
    with frozen_statistics(model):
        return model(*inputs)


def accumulate_gradients(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: Callable[[object, torch.Tensor], torch.Tensor],
) -> int:
    """Fill `.grad` with the summed gradients of the training loss over `batches` (what the
    Taylor importance reads). Returns the number of batches.
    """
    model.zero_grad(set_to_none=True)
    count = 0
    with frozen_statistics(model):
        for inputs, label in batches:
            loss_fn(model(*inputs), label).backward()
            count += 1
    if count == 0:
        raise ValueError("no batches for importance estimation")
    return count


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))


def taylor_per_parameter() -> object:
    """GroupTaylorImportance divided by the parameters one channel of the group carries.

    With one global threshold, plain Taylor scores (normalised per group) take as many channels
    from a 12-channel bottleneck as from a 320-channel residual stream, though a channel of the
    first saves a few hundred weights and one of the second thousands. Dividing by that cost
    ranks channels by lost loss per saved parameter (the resource-aware form of the criterion,
    Molchanov et al. 2017).
    """
    import torch_pruning as tp

    class TaylorPerParameter(tp.importance.GroupTaylorImportance):
        def __call__(self, group: object) -> torch.Tensor | None:
            scores = super().__call__(group)
            if scores is None:
                return None
            cost = 0
            for dep, _ in group:
                module = dep.target.module
                if _is_conv(module):
                    # Output channel k of a Conv2d is weight[k]; of a ConvTranspose2d weight[:, k].
                    out = getattr(dep.handler, "__name__", "") == "prune_out_channels"
                    transposed = isinstance(module, nn.ConvTranspose2d)
                    cost += (
                        module.weight[:, 0].numel()
                        if out == transposed
                        else module.weight[0].numel()
                    )
                    if out and module.bias is not None:
                        cost += 1
                elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                    cost += 2
            return scores / max(cost, 1)

    return TaylorPerParameter()


class ChannelPruner:
    """Iterative Taylor pruning of one model in place: `steps` calls of `step()`, each removing
    `ratio_per_step` of the initial channels (over all prunable groups with global ranking, or
    of each group with local ranking). No layer loses more than `max_ratio` of its initial
    channels; `round_to` keeps channel counts multiples of it. Importance: Taylor per parameter
    (`taylor_per_parameter`), or plain GroupTaylorImportance with `per_parameter=False`.
    Call `accumulate_gradients` before each step.

    The pruner also tracks, per conv, which of the *original* input channels are gone, so that
    `masked_reference` can rebuild the equivalent unpruned network.
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Sequence[torch.Tensor],
        steps: int,
        ratio_per_step: float,
        *,
        max_ratio: float = 0.8,
        global_pruning: bool = True,
        round_to: int | None = None,
        per_parameter: bool = True,
    ) -> None:
        import torch_pruning as tp

        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        total = steps * ratio_per_step
        if not 0 < ratio_per_step or total >= 1:
            raise ValueError(
                f"steps x ratio_per_step must lie in (0, 1), got {steps} x {ratio_per_step}"
            )
        if not 0 < max_ratio < 1:
            raise ValueError(f"max_ratio must lie in (0, 1), got {max_ratio}")
        self.model = model
        names = dict(model.named_modules())
        self.excluded = excluded_layers(model)
        missing = sorted(set(self.excluded) - set(names))
        if missing:
            raise ValueError(f"excluded layers not found in the model: {missing}")
        was_training = model.training
        importance = (
            taylor_per_parameter() if per_parameter else tp.importance.GroupTaylorImportance()
        )
        self._pruner = tp.pruner.BasePruner(
            model,
            tuple(example_inputs),
            importance=importance,
            global_pruning=global_pruning,
            pruning_ratio=total,
            iterative_steps=steps,
            max_pruning_ratio=max_ratio,
            round_to=round_to,
            ignored_layers=[names[n] for n in self.excluded],
            forward_fn=_trace_forward,
        )
        model.train(was_training)  # Torch-Pruning leaves the model in eval mode
        self._graph = self._pruner.DG
        self._names = {module: name for name, module in names.items()}
        # Original indices of the input channels each conv still has.
        self._original_inputs = {name: m.in_channels for name, m in names.items() if _is_conv(m)}
        self._alive_inputs = {name: list(range(n)) for name, n in self._original_inputs.items()}
        self.steps = steps
        self.done = 0

    def step(self) -> int:
        """Prune one step with the gradients now in `.grad`; returns the channels removed
        (summed over the groups' roots).
        """
        if self.done >= self.steps:
            raise RuntimeError(f"all {self.steps} pruning steps are done")
        if not any(p.grad is not None for p in self.model.parameters()):
            raise RuntimeError("no gradients: call accumulate_gradients before each step")
        removed = 0
        for group in self._pruner.step(interactive=True):
            inputs: dict[str, set[int]] = {}
            for dep, idxs in group:
                module = dep.target.module
                if _is_conv(module) and self._graph.is_in_channel_pruning_fn(dep.handler):
                    inputs.setdefault(self._names[module], set()).update(int(i) for i in idxs)
            removed += len(group[0].idxs)
            group.prune()
            for name, gone in inputs.items():
                alive = self._alive_inputs[name]
                self._alive_inputs[name] = [c for k, c in enumerate(alive) if k not in gone]
        self.done += 1
        self.model.zero_grad(set_to_none=True)
        return removed

    def removed_inputs(self) -> dict[str, list[int]]:
        """Conv name -> original indices of the input channels it has lost so far."""
        return {
            name: sorted(set(range(self._original_inputs[name])) - set(alive))
            for name, alive in self._alive_inputs.items()
            if len(alive) < self._original_inputs[name]
        }


def masked_reference(
    original: nn.Module, removed_inputs: Mapping[str, Sequence[int]]
) -> nn.Module:
    """A copy of the unpruned `original` in which every conv ignores the input channels that
    pruning removed (their weights zeroed). If the pruner coupled every layer correctly, this
    network computes what the pruned one computes: each removed channel only ever reaches the
    output through the input weights of convs.
    """
    reference = copy.deepcopy(original)
    modules = dict(reference.named_modules())
    with torch.no_grad():
        for name, channels in removed_inputs.items():
            module = modules[name]
            index = torch.as_tensor(list(channels), dtype=torch.long)
            # Conv2d weights are (out, in, k, k); ConvTranspose2d weights are (in, out, k, k).
            if isinstance(module, nn.ConvTranspose2d):
                module.weight[index] = 0
            else:
                module.weight[:, index] = 0
    return reference
