"""Data and fine-tuning for pruning: the training recipe of the checkpoint being pruned.

The pruned model is fine-tuned on the same data stream as it was trained on (the checkpoint's
own training config: synthetic mix or dataset reader, augmentation, modality dropout), with the
same loss (main + side heads), Adam and poly decay, every parameter trainable. Optionally
the unpruned network teaches the pruned one (pixel-wise knowledge distillation on the main
logits), which recovers accuracy in fewer iterations than the labels alone. Evaluation frames are
encoded once and kept in memory, since every pruning step evaluates them again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssma_ros.compress.prune import Batch
from ssma_ros.model.base import OUT, SegOutput
from ssma_ros.model.loss import SegLoss
from ssma_ros.train.config import TrainConfig, from_dict
from ssma_ros.train.data import DataInfo, SegDataset, build_datasets
from ssma_ros.train.dist import TrainBatches
from ssma_ros.train.metrics import SegMetrics
from ssma_ros.train.optim import PolyLR, build_optimizer
from ssma_ros.train.trainer import evaluate


class CachedSet(Dataset):
    """The items of a dataset, computed once (evaluation frames do not change between steps)."""

    def __init__(self, dataset: Dataset) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class Recipe:
    """Training and evaluation data of a checkpoint's training config (its `train_config` meta),
    with `overrides` ("data.val_samples=32", ...) applied.
    """

    def __init__(self, train_config: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
        self.cfg: TrainConfig = from_dict(dict(train_config), list(overrides))
        train_set, eval_sets, info = build_datasets(self.cfg)
        self.train_set: SegDataset = train_set
        self.info: DataInfo = info
        self.eval_sets = {name: CachedSet(ds) for name, ds in eval_sets.items()}
        self.loss_fn = SegLoss(void_index=info.void_index)

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    def batches(self, input_names: Sequence[str], batch_size: int, start: int) -> Iterator[Batch]:
        """Endless training batches (inputs in the order of `input_names`, label), beginning
        `start` batches into the stream of this config's seed, so that later calls continue
        it instead of repeating it.
        """
        sampler = TrainBatches(len(self.train_set), batch_size, 0, 1, self.cfg.seed, start=start)
        loader = DataLoader(
            self.train_set,
            batch_sampler=sampler,
            num_workers=self.cfg.data.num_workers,
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )
        for batch in loader:
            yield tuple(batch[name] for name in input_names), batch["label"]

    def evaluate(self, model: nn.Module) -> dict[str, SegMetrics]:
        """Metrics of `model` on every evaluation set (the model's modes are restored)."""
        device = next(model.parameters()).device
        return {
            name: evaluate(
                model,
                DataLoader(ds, batch_size=self.cfg.eval.batch_size),
                self.num_classes,
                device,
                self.info.void_index,
            )
            for name, ds in self.eval_sets.items()
        }


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Pixel-wise KL(teacher || student) of the class distributions at `temperature`, averaged
    over pixels and scaled by T^2 so its gradients keep their size as T changes (Hinton et al.).
    """
    t = temperature
    log_student = F.log_softmax(student / t, dim=1)
    log_teacher = F.log_softmax(teacher / t, dim=1)
    per_pixel = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    return per_pixel.mean() * t * t


class Distillation:
    """A frozen `teacher` (the unpruned network, eval mode) whose logits the student's main
    logits are pulled towards with `weight` x `distillation_loss` at `temperature`.
    """

    def __init__(self, teacher: nn.Module, weight: float, temperature: float = 1.0) -> None:
        if weight <= 0 or temperature <= 0:
            raise ValueError(
                f"distillation weight and temperature must be > 0, got {weight}, {temperature}"
            )
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight = weight
        self.temperature = temperature

    def __call__(self, inputs: Sequence[torch.Tensor], outputs: SegOutput) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher(*inputs)[OUT]
        return self.weight * distillation_loss(outputs[OUT], teacher, self.temperature)


def finetune(
    model: nn.Module,
    batches: Iterator[Batch],
    loss_fn: nn.Module,
    iterations: int,
    lr: float,
    power: float = 0.9,
    distillation: Distillation | None = None,
) -> list[float]:
    """Train every parameter of `model` for `iterations` steps of Adam with poly decay from `lr`
    (a fresh optimizer: pruning replaced the parameter tensors), on `loss_fn` plus the
    `distillation` term if given. Returns the losses.
    """
    if iterations <= 0:
        return []
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = build_optimizer([(list(model.parameters()), lr)])
    scheduler = PolyLR(optimizer, iterations, power)
    was_training = model.training
    model.train()
    losses = []
    try:
        for _ in range(iterations):
            inputs, label = next(batches)
            outputs = model(*inputs)
            loss = loss_fn(outputs, label)
            if distillation is not None:
                loss = loss + distillation(inputs, outputs)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"fine-tuning loss is {value}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(value)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return losses
