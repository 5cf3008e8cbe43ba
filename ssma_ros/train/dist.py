"""torch.distributed plumbing for `torchrun`: process group, device, samplers.

`torchrun --nproc_per_node=N -m ssma_ros.train.cli CONFIG` (or `ssma-train`) sets RANK,
WORLD_SIZE and LOCAL_RANK; without them training runs as a single process. The backend is NCCL
on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, logs and draws progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> DistContext:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' asked for, but torch sees no CUDA GPU; use device=cpu"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, dev)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... of range(n): every index on exactly one rank, no padding.

    DistributedSampler pads with repeated samples so that ranks get equal counts; in evaluation
    those repeats would be counted twice in the confusion matrix.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class TrainBatches(Sampler[list[int]]):
    """Endless batches of indices for iteration-based training, reproducible and resumable.

    Epoch e is DistributedSampler(shuffle, seed, epoch=e) split into batches (incomplete batches
    dropped so every step has the same batch size). `start` skips the batches that an earlier
    run already consumed, without loading them, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """

    def __init__(
        self, length: int, batch_size: int, rank: int, world_size: int, seed: int, start: int = 0
    ) -> None:
        self.length = length
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.start = start
        per_rank = -(-length // world_size)  # DistributedSampler pads each rank to this size
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{length} training samples over {world_size} process(es) make no batch of "
                f"{batch_size}; lower optim.batch_size or add samples"
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        sampler = DistributedSampler(
            range(self.length),
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        n = self.batches_per_epoch * self.batch_size
        return [indices[i : i + self.batch_size] for i in range(0, n, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = divmod(self.start, self.batches_per_epoch)
        while True:
            # The epoch rides along so the dataset can seed augmentations per (epoch, index).
            for batch in self.epoch_batches(epoch)[skip:]:
                yield [epoch * self.length + i for i in batch]
            epoch, skip = epoch + 1, 0
