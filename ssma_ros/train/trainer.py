"""Stage-wise, iteration-based trainer for AdapNet++ experts and fused (SSMA, early, late) models.

One `Trainer` runs one stage (reference/ssma_paper.md §5): Adam with poly decay, evaluation every
`eval.interval` iterations on every evaluation set (mIoU, per-class IoU, confusion matrix),
checkpoints `last.pt` and `best.pt` (best mean mIoU over the evaluation sets) with everything a
resume needs, a CSV log, TensorBoard scalars and PNG plots. Under `torchrun` it trains with
DistributedDataParallel; every rank evaluates its shard and all ranks get the same metrics;
only rank 0 writes files.

Long because: one training run's life cycle (build, resume, step, evaluate, checkpoint, log) is
one object's state; the pieces it composes (data, stages, loss, metrics, plots) live elsewhere.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ssma_ros.model.base import OUT
from ssma_ros.model.builder import build_model
from ssma_ros.model.checkpoint import load_checkpoint, save_checkpoint
from ssma_ros.model.loss import SegLoss
from ssma_ros.model.pretrained import init_backbones
from ssma_ros.train import plots
from ssma_ros.train.config import TrainConfig
from ssma_ros.train.data import SegDataset, build_datasets
from ssma_ros.train.dist import DistContext, ShardSampler, TrainBatches, setup
from ssma_ros.train.metrics import ConfusionMeter, SegMetrics
from ssma_ros.train.optim import PolyLR, build_optimizer
from ssma_ros.train.stages import (
    blend_other_stream,
    freeze_streams,
    frozen_modules,
    load_expert,
    set_train_mode,
    split_parameters,
    unwrap,
    warm_modality,
    warm_start,
)

#: Training crops that init.blend's least-squares maps are fitted on.
FIT_SAMPLES = 32
LAST = "last.pt"
BEST = "best.pt"


def model_inputs(
    model: nn.Module, batch: Mapping[str, torch.Tensor], device: torch.device
) -> list[torch.Tensor]:
    """The tensors `model.forward` takes, in order, from a batch with "rgb" and "aux"."""
    return [batch[name].to(device, non_blocking=True) for name in unwrap(model).input_names]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    void_index: int = 0,
) -> SegMetrics:
    """Confusion-matrix metrics of `model` over `loader`.

    Under DDP each rank passes its shard (see `ShardSampler`) and every rank returns the metrics
    of the whole set.
    """
    net = unwrap(model)
    meter = ConfusionMeter(num_classes, void_index, device)
    with eval_mode(net):
        for batch in loader:
            logits = net(*model_inputs(net, batch, device))[OUT]
            meter.update(logits, batch["label"].to(device))
    return meter.compute()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode inside the block.

    Afterwards every sub-module gets its own mode back (a plain model.train() would unfreeze the
    BN of frozen streams).
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CsvLog:
    """Append-only CSV with a fixed header.

    On resume, rows past the resumed iteration are dropped (they came from a run that went
    further than its last checkpoint).
    """

    def __init__(self, path: Path, header: list[str], resume_from: int | None) -> None:
        self.path = path
        self.header = header
        rows: list[list[str]] = []
        if resume_from is not None and path.exists():
            with path.open(newline="") as f:
                reader = csv.reader(f)
                if next(reader, None) == header:
                    rows = [r for r in reader if r and int(r[0]) <= resume_from]
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    def write(self, row: list[Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(row)


class Trainer:
    """Build everything one stage needs from a `TrainConfig`.

    `run()` trains and returns the final metrics per evaluation set.
    """

    def __init__(
        self, cfg: TrainConfig, resume: bool = False, ctx: DistContext | None = None
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx or setup(cfg.device)
        self.device = self.ctx.device
        self.out = Path(cfg.output_dir)
        # Same initial weights on every rank (DDP also broadcasts them); dropout differs per rank.
        torch.manual_seed(cfg.seed)
        self.train_set, self.eval_sets, self.info = build_datasets(cfg)
        self.num_classes = len(self.info.classes)
        self.model = self._build_model()
        if cfg.optim.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.optim.amp)
        # Loss scaling keeps fp16 gradients from underflowing; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.optim.amp == "fp16")
        self.frozen = frozen_modules(self.model)  # stay in eval mode while training
        self.optimizer, self.scheduler = self._build_optimizer()
        self.loss_fn = SegLoss(void_index=self.info.void_index)
        self.iteration = 0
        self.best_miou = -math.inf
        self.history: dict[str, Any] = {"train": [], "eval": {name: [] for name in self.eval_sets}}
        self.latest: dict[str, SegMetrics] = {}  # metrics of the last evaluation
        self.lr = 0.0  # base-group lr of the last step
        last = self.out / LAST
        if resume and last.exists():
            self._resume(last)
        elif self.ctx.is_main and (resume or last.exists()):
            print(
                f"ssma-train: {'nothing to resume' if resume else 'not resuming'} in {self.out}; "
                "starting at iteration 0" + ("" if resume else " (--resume continues a run)")
            )
        if self.iteration == 0:  # a resumed run has restored its RNG state instead
            torch.manual_seed(cfg.seed * 1000 + self.ctx.rank + 1)
        self.net: nn.Module = self.model
        if self.ctx.distributed:
            if cfg.sync_bn and self.device.type == "cuda":
                self.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.optim.compile:  # training steps only: evaluation and checkpoints use self.model
            self.net = torch.compile(self.net)
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "plots").mkdir(exist_ok=True)
            start = self.iteration if resume else None
            self.train_log = CsvLog(
                self.out / "train.csv", ["iteration", "loss", "lr", "seconds_per_iteration"], start
            )
            self.eval_log = CsvLog(
                self.out / "eval.csv",
                ["iteration", "set", "miou", "pixel_accuracy"]
                + [f"iou_{c}" for c in self.info.classes],
                start,
            )
            self.writer = None
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # heavy import, rank 0 only

                self.writer = SummaryWriter(
                    str(self.out / "tensorboard"), purge_step=start or None
                )

    # -- construction -------------------------------------------------------------------------

    def _fit_batch(self) -> dict[str, torch.Tensor]:
        """The first FIT_SAMPLES training crops, augmented as in training, no modality dropout."""
        cfg = self.cfg
        frames = SegDataset(
            self.train_set.source,
            self.train_set.preprocess,
            cfg.seed,
            cfg.augment,
            crop=cfg.data.crop,
        )
        items = [frames[i] for i in range(min(FIT_SAMPLES, len(frames)))]
        return {
            k: torch.stack([item[k] for item in items]).to(self.device) for k in ("rgb", "aux")
        }

    def _build_model(self) -> nn.Module:
        cfg = self.cfg
        modality = cfg.model.modalities[0] if cfg.model.arch == "adapnet" else None
        model = build_model(cfg.model.arch, cfg.model.config, self.num_classes, modality=modality)
        if cfg.init.rgb is not None:
            experts = {}
            for name, path in (("rgb", cfg.init.rgb), ("aux", cfg.init.aux)):
                experts[name] = load_checkpoint(path)
                load_expert(model, name, experts[name][0])
            if cfg.init.warm is not None:
                metrics = {k: meta.get("metrics") or {} for k, (_, meta) in experts.items()}
                self.warm_modality = warm_modality(cfg.init.warm, metrics)
                warm_start(model, self.warm_modality, experts[self.warm_modality][0])
                if self.ctx.is_main:
                    print(f"ssma-train: warm start as the {self.warm_modality} expert")
                if cfg.init.blend:
                    fits = blend_other_stream(
                        model, self.warm_modality, self._fit_batch(), cfg.init.blend
                    )
                    if self.ctx.is_main:
                        print(
                            f"ssma-train: the other stream blended in at {cfg.init.blend:g} "
                            f"(least-squares R^2 per level: {', '.join(f'{f:.2f}' for f in fits)})"
                        )
        elif cfg.init.checkpoint is not None:
            source, _ = load_checkpoint(cfg.init.checkpoint)
            if getattr(source, "arch", None) != model.arch:
                raise ValueError(
                    f"init.checkpoint {cfg.init.checkpoint} holds a {source.arch!r} model, "
                    f"not the configured {model.arch!r}"
                )
            model.load_state_dict(source.state_dict())
        elif cfg.init.backbone is not None:
            for report in init_backbones(model, cfg.init.backbone):
                if self.ctx.is_main:
                    print(f"ssma-train: init.backbone: {report.summary()}")
        if cfg.stage == "finetune":
            freeze_streams(model, cfg.optim.freeze)
        return model.to(self.device)

    def _build_optimizer(self) -> tuple[torch.optim.Adam, PolyLR]:
        o, init = self.cfg.optim, self.cfg.init
        pretrained = init.rgb is not None or init.checkpoint is not None
        if self.cfg.stage == "fusion" and pretrained:  # from scratch, every part learns at lr
            streams, rest = split_parameters(self.model, o.freeze)
            groups = [(streams, o.lr * o.encoder_lr_scale), (rest, o.lr)]
        else:  # expert: everything; finetune: the frozen streams drop out (requires_grad False)
            groups = [(list(self.model.parameters()), o.lr)]
        optimizer = build_optimizer(groups, weight_decay=o.weight_decay)
        return optimizer, PolyLR(optimizer, o.iterations, o.power)

    # -- checkpoints --------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        """What a checkpoint carries besides the weights: enough to export, evaluate or resume."""
        return {
            "stage": self.cfg.stage,
            "iteration": self.iteration,
            "classes": list(self.info.classes),
            "palette": self.info.palette.tolist(),
            "void_index": self.info.void_index,
            "preprocess": self.info.preprocess.to_dict(),
            "modalities": list(self.cfg.model.modalities),
            "train_config": self.cfg.to_dict(),
            "metrics": {
                name: points[-1][1] for name, points in self.history["eval"].items() if points
            },
            "confusion": {name: m.confusion.tolist() for name, m in self.latest.items()},
        }

    def _resume_state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "world_size": self.ctx.world_size,
            "best_miou": self.best_miou,
            "history": self.history,
            "scaler": self.scaler.state_dict(),
        }

    def _gather_rng(self) -> list[dict[str, Any]]:
        """Every rank's RNG state (dropout masks differ per rank), collected on all ranks."""
        state = rng_state()
        if not self.ctx.distributed:
            return [state]
        states: list[Any] = [None] * self.ctx.world_size
        dist.all_gather_object(states, state)
        return states

    def _save(self, improved: bool) -> None:
        rng = self._gather_rng()  # collective: every rank takes part, rank 0 writes
        if not self.ctx.is_main:
            return
        meta = self._meta()
        state = self._resume_state(rng)
        save_checkpoint(self.out / LAST, self.model, keep_previous=True, resume=state, **meta)
        if improved:
            save_checkpoint(self.out / BEST, self.model, **meta)

    def _resume(self, path: Path) -> None:
        loaded, meta = load_checkpoint(path)
        if meta.get("stage") != self.cfg.stage or getattr(loaded, "arch", None) != self.model.arch:
            raise ValueError(
                f"{path} is a {meta.get('stage')!r}/{getattr(loaded, 'arch', None)!r} run; "
                f"the config trains {self.cfg.stage!r}/{self.model.arch!r}"
            )
        state = meta["resume"]
        self.model.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(meta["iteration"])
        self.best_miou = float(state["best_miou"])
        self.history = state["history"]
        if state["world_size"] == self.ctx.world_size:
            set_rng_state(state["rng"][self.ctx.rank])
        else:  # another world size cannot replay the same stream; keep runs distinct per rank
            torch.manual_seed(self.cfg.seed * 1000 + self.ctx.rank + 1 + self.iteration)
        if self.ctx.is_main:
            print(f"ssma-train: resumed {path} at iteration {self.iteration}")

    # -- data ---------------------------------------------------------------------------------

    def _train_loader(self) -> DataLoader:
        batches = TrainBatches(
            len(self.train_set),
            self.cfg.optim.batch_size,
            self.ctx.rank,
            self.ctx.world_size,
            self.cfg.seed,
            start=self.iteration,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.data.num_workers > 0,
            # Own generator: creating the loader must not consume the global RNG
            # (that would shift dropout masks between a straight and a resumed run).
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def _eval_loader(self, dataset: SegDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.cfg.eval.batch_size,
            sampler=ShardSampler(len(dataset), self.ctx.rank, self.ctx.world_size),
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    # -- loop ---------------------------------------------------------------------------------

    def run(self, stop_at: int | None = None) -> dict[str, SegMetrics]:
        """Train to `optim.iterations`, or pause at iteration `stop_at`.

        A pause saves `last.pt` there, to continue later with resume; the lr schedule still runs
        over `optim.iterations`.
        """
        cfg = self.cfg
        end = cfg.optim.iterations if stop_at is None else min(stop_at, cfg.optim.iterations)
        results: dict[str, SegMetrics] = {}
        if self.iteration >= end:
            return self.evaluate_all()
        batches = iter(self._train_loader())
        bar = tqdm(
            total=cfg.optim.iterations,
            initial=self.iteration,
            desc=cfg.stage,
            disable=not (self.ctx.is_main and cfg.progress),
            dynamic_ncols=True,
        )
        loss_sum, loss_count, busy = 0.0, 0, 0.0
        while self.iteration < end:
            tick = time.perf_counter()
            loss_sum += self.step(next(batches))
            busy += time.perf_counter() - tick  # data + step, not evaluation
            loss_count += 1
            bar.update(1)
            if self.iteration % cfg.log_interval == 0 or self.iteration == end:
                mean = self._mean_over_ranks(loss_sum / loss_count)
                self._log_train(mean, busy / loss_count)
                bar.set_postfix(loss=f"{mean:.4f}")
                loss_sum, loss_count, busy = 0.0, 0, 0.0
            if self.iteration % cfg.eval.interval == 0 or self.iteration == cfg.optim.iterations:
                results = self.latest = self.evaluate_all()
                for name, m in results.items():
                    self.history["eval"][name].append((self.iteration, m.miou))
                miou = float(np.nanmean([m.miou for m in results.values()]))
                improved = miou > self.best_miou
                self.best_miou = max(self.best_miou, miou)
                self._save(improved)
                if self.ctx.is_main:
                    self._report(results)
                    bar.write(
                        f"iteration {self.iteration}: "
                        + ", ".join(
                            f"{name} mIoU {m.miou * 100:.1f}%" for name, m in results.items()
                        )
                    )
            elif self.iteration == end:  # paused between evaluations
                self._save(improved=False)
        bar.close()
        if self.ctx.is_main and self.writer is not None:
            self.writer.close()
        return results

    def step(self, batch: Mapping[str, torch.Tensor]) -> float:
        """One optimisation step; returns this rank's loss."""
        set_train_mode(self.net, self.frozen)
        inputs = model_inputs(self.model, batch, self.device)
        if self.cfg.optim.channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
        label = batch["label"].to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            loss = self.loss_fn(self.net(*inputs), label)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.lr = self.optimizer.param_groups[-1]["lr"]  # the last group is the one at the base lr
        self.scaler.step(self.optimizer)  # a plain optimizer.step() unless fp16
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return float(loss.detach())

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BN statistics.

        DDP broadcasts them before each forward, so after the last step they differ per rank;
        evaluation and the checkpoint need one model.
        """
        if self.ctx.distributed:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def _mean_over_ranks(self, value: float) -> float:
        if not self.ctx.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.ctx.world_size

    def evaluate_all(self) -> dict[str, SegMetrics]:
        """Metrics on every evaluation set (a collective under DDP: all ranks call it)."""
        self._sync_buffers()
        return {
            name: evaluate(
                self.model,  # eager and fp32, whatever the training step runs
                self._eval_loader(ds),
                self.num_classes,
                self.device,
                self.info.void_index,
            )
            for name, ds in self.eval_sets.items()
        }

    # -- reporting (rank 0) -------------------------------------------------------------------

    def _log_train(self, loss: float, seconds: float) -> None:
        self.history["train"].append((self.iteration, loss))
        if not self.ctx.is_main:
            return
        self.train_log.write([self.iteration, f"{loss:.6f}", f"{self.lr:.3e}", f"{seconds:.4f}"])
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, self.iteration)
            self.writer.add_scalar("train/lr", self.lr, self.iteration)

    def _report(self, results: Mapping[str, SegMetrics]) -> None:
        for name, m in results.items():
            self.eval_log.write(
                [self.iteration, name, f"{m.miou:.6f}", f"{m.pixel_accuracy:.6f}"]
                + [f"{v:.6f}" for v in m.iou]
            )
            if self.writer is not None:
                self.writer.add_scalar(f"val/{name}/miou", m.miou, self.iteration)
                self.writer.add_scalar(
                    f"val/{name}/pixel_accuracy", m.pixel_accuracy, self.iteration
                )
        if self.writer is not None:
            self.writer.flush()
        if not self.cfg.eval.plots:
            return
        folder = self.out / "plots"
        plots.plot_curves(self.history["train"], self.history["eval"], folder / "curves.png")
        for name, m in results.items():
            plots.plot_confusion(
                m.confusion,
                self.info.classes,
                folder / f"confusion_{name}.png",
                title=f"{name}, iteration {self.iteration}: mIoU {m.miou * 100:.1f}%",
            )
            plots.plot_samples(
                self._sample_rows(self.eval_sets[name]),
                self.info.palette,
                folder / f"samples_{name}.png",
                title=f"{name}, iteration {self.iteration}",
            )

    @torch.no_grad()
    def _sample_rows(self, dataset: SegDataset) -> list[dict[str, np.ndarray]]:
        rows = []
        with eval_mode(self.model) as net:
            for i in range(min(self.cfg.eval.plot_samples, len(dataset))):
                sample, images = dataset.example(i)
                batch = {k: v[None] for k, v in sample.items() if isinstance(v, torch.Tensor)}
                prob = torch.softmax(net(*model_inputs(net, batch, self.device))[OUT], dim=1)[0]
                conf, pred = prob.max(dim=0)
                rows.append(
                    {
                        **images,
                        "label": sample["label"].numpy(),
                        "pred": pred.cpu().numpy(),
                        "confidence": conf.cpu().numpy(),
                    }
                )
        return rows
