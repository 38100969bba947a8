"""DistributedDataParallel for the training loop: one process per device, started by torchrun.

A DDP run must end with the weights one process reaches for the same seed and global batch
(`train.batch_size`), so that scaling out changes the speed, not the result. Hence:

- every rank draws the same shuffled order and the same corruption noise for the *whole* global
  batch (the seeded generators are identical on every rank) and trains on its own slice of it;
- DDP sums the gradients; a communication hook weights each rank's share by its fraction of the
  global batch, so the sum is the global-batch mean even when the last batch does not split
  evenly (the default hook divides by the world size, which is only right for equal slices);
- the epoch's loss sums are all-reduced, so rank 0 reports the numbers one process would.

The process group is owned by the entry point (`flows.train_ddp`), which reads torchrun's
RANK / WORLD_SIZE / LOCAL_RANK; `fit()` only joins a group that already exists.
"""

# No `from __future__ import annotations` here: DDP checks a communication hook's annotations
# against the real dist.GradBucket and Future types, and strings would fail that check.

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from components.models.base import Autoencoder

LAUNCH_HINT = (
    "start it with torchrun (`python -m torch.distributed.run --nproc-per-node N -m flows.train_ddp ...`) "
    "or through `aeflow run --set train.strategy=ddp`, which launches torchrun for you"
)


class DistributedSetupError(RuntimeError):
    """DDP was asked for but cannot run as configured; the message says what to change."""


@dataclass(frozen=True)
class Rank:
    """Where this process sits in the job: its global rank, the job's size and its rank on the node."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, checkpoints and exports."""
        return self.rank == 0


def rank_from_env(environ: Mapping[str, str] = os.environ) -> Rank:
    """Read torchrun's environment; a missing variable means we were not started by torchrun."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if name not in environ]
    if missing:
        needed = ", ".join(missing)
        raise DistributedSetupError(f"train.strategy=ddp needs {needed} from torchrun; {LAUNCH_HINT}")
    return Rank(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ["LOCAL_RANK"]))


def backend_for(device: torch.device, requested: str) -> str:
    """`auto` is nccl on CUDA and gloo elsewhere; nccl cannot move CPU tensors."""
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise DistributedSetupError(f"train.dist_backend=nccl needs CUDA; this process trains on {device}")
    return requested


def rank_device(device: torch.device, rank: Rank) -> torch.device:
    """One GPU per process: CUDA ranks take the GPU of their local rank; CPU ranks share the CPU."""
    if device.type != "cuda":
        return device
    if rank.local_rank >= torch.cuda.device_count():
        raise DistributedSetupError(
            f"local rank {rank.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
            "start at most one process per GPU (train.processes / --nproc-per-node)"
        )
    chosen = torch.device("cuda", rank.local_rank)
    torch.cuda.set_device(chosen)
    return chosen


@contextmanager
def process_group(device: torch.device, backend: str = "auto") -> Iterator[Rank]:
    """Join torchrun's job for the duration of the block, then leave it cleanly."""
    rank = rank_from_env()
    dist.init_process_group(backend=backend_for(rank_device(device, rank), backend))
    try:
        yield rank
    finally:
        dist.destroy_process_group()


def current(strategy: str) -> Rank | None:
    """This process's rank when `strategy` is ddp (the group must exist), None for one process."""
    if strategy != "ddp":
        return None
    if not (dist.is_available() and dist.is_initialized()):
        raise DistributedSetupError(f"train.strategy=ddp, but no process group was started; {LAUNCH_HINT}")
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def check_batches(n_images: int, batch_size: int, rank: Rank) -> None:
    """Every batch, the last one included, must give every rank at least one image."""
    if batch_size % rank.world_size:
        raise DistributedSetupError(
            f"train.batch_size={batch_size} is the global batch and must split evenly over "
            f"{rank.world_size} processes; pick a multiple of {rank.world_size}"
        )
    last = n_images % batch_size
    if 0 < last < rank.world_size:
        raise DistributedSetupError(
            f"the last batch holds {last} image(s) of {n_images}, fewer than the {rank.world_size} "
            "processes; change train.batch_size or data.limit"
        )


def shard(n: int, rank: Rank) -> slice:
    """This rank's contiguous rows of a global batch of `n`; slice sizes differ by at most one."""
    base, extra = divmod(n, rank.world_size)
    start = rank.rank * base + min(rank.rank, extra)
    return slice(start, start + base + (1 if rank.rank < extra else 0))


class _Losses(nn.Module):
    """Routes `model.losses` through a forward pass: DDP only synchronises what its forward ran."""

    losses: Callable[..., dict[str, torch.Tensor]]

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model
        self.losses = model.losses  # the bound method, taken before fit() shadows it

    def forward(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = self.losses(inputs, target, labels)
        return terms


class BatchShare:
    """This rank's slice of each global batch, and the weight its gradient gets in the all-reduce."""

    def __init__(self, rank: Rank) -> None:
        self.rank = rank
        self.weight = 1.0 / rank.world_size

    def take(
        self, clean: torch.Tensor, noisy: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Slice a global batch (drawn identically on every rank) down to this rank's rows."""
        rows = shard(len(clean), self.rank)
        self.weight = (rows.stop - rows.start) / len(clean)
        return clean[rows], noisy[rows], None if labels is None else labels[rows]


def _weighted_allreduce(share: BatchShare, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Σ_rank (rows_rank / rows_global) · mean-gradient_rank = the global batch's mean gradient."""
    buffer = bucket.buffer().mul_(share.weight)
    work = dist.all_reduce(buffer, async_op=True)
    assert work is not None
    return work.get_future().then(lambda future: future.value()[0])


def wrap(model: Autoencoder, rank: Rank, device: torch.device) -> BatchShare:
    """Put `model.losses` behind DistributedDataParallel for this run; returns the batch share to use.

    `fit()` removes the instance attribute again at the end, so the model comes back plain.
    """
    ddp = DistributedDataParallel(
        _Losses(model),
        device_ids=[device] if device.type == "cuda" else None,
        # The models have no buffers; and validation (under no_grad) must not need every rank.
        forward_sync_buffers=False,
    )
    share = BatchShare(rank)
    ddp.register_comm_hook(share, _weighted_allreduce)
    # A bound method, not the module: assigning a Module would register DDP as a child of model.
    model.losses = ddp.__call__  # type: ignore[method-assign]
    return share


def sum_across(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The epoch's per-rank sums added over all ranks (one all-reduce for all terms)."""
    if not sums:
        return sums
    names = sorted(sums)
    stacked = torch.stack([sums[name] for name in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked.unbind(), strict=True))


def seed_model_noise(seed: int, rank: Rank) -> None:
    """Noise drawn inside a model (a VAE's reparameterisation) must differ between ranks' slices.

    Rank 0 keeps the stream one process would use; the others get streams of their own.
    """
    if rank.rank:
        torch.manual_seed(seed + 7919 * rank.rank)
