"""The training loop: whole data set as one tensor on the device, corruption drawn per batch.

Tracking is not imported here: the loop reports each finished epoch through the `on_epoch`
callback, so it runs the same under Prefect + MLflow, in a notebook, or in a unit test.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from components import distributed
from components.checkpoints import (
    CHECKPOINT_FORMAT,
    ResumeNote,
    restore_rng_states,
    resumable_state,
    rng_states,
    save_checkpoint,
)
from components.config import RunConfig
from components.corruption import corrupt, corrupt_fixed, model_input_shape
from components.data import ImageSplits
from components.models import Autoencoder, build_model


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    seconds: float
    images_per_second: float
    terms: dict[str, float] = field(default_factory=dict)  # other loss terms (kl, disc_loss, ...)


@dataclass
class TrainResult:
    model: Autoencoder
    device: str
    checkpoint: Path
    seconds: float
    history: list[EpochReport] = field(default_factory=list)
    resumed_from: int = 0  # the epoch a checkpoint supplied (0: trained from scratch)


def select_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda was asked for, but torch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("train.device=mps was asked for, but this torch build has no MPS")
    return torch.device(name)


@torch.no_grad()
def _validation_loss(
    model: Autoencoder,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor | None,
    autocast: Callable[[], object],
) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(inputs), 1024):
        part = slice(start, start + 1024)
        with autocast():  # type: ignore[attr-defined]
            terms = model.losses(inputs[part], targets[part], None if labels is None else labels[part])
        total += terms["loss"].item() * len(inputs[part])
        count += len(inputs[part])
    return total / max(count, 1)


def needs_labels(model: Autoencoder) -> bool:
    return model.conditional


def fit(
    cfg: RunConfig,
    splits: ImageSplits,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_resume: Callable[[ResumeNote], None] | None = None,
) -> TrainResult:
    """Build the configured model and train it; returns the model on the CPU in eval mode.

    With `train.resume` (the default) a checkpoint of the same config continues where it stopped,
    random generators included, so a killed or retried run ends where an uninterrupted one would.
    `on_epoch` is called for the epochs trained in this call; `on_resume` once, before training,
    with what was found at the checkpoint path (also when it could not be used, and why).
    DDP runs train from scratch: each rank's global RNG is seeded apart and not checkpointed.
    """
    train_cfg = cfg.train
    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    device = select_device(train_cfg.device)
    ddp = distributed.current(train_cfg.strategy)  # None for one process
    if ddp is not None:
        device = distributed.rank_device(device, ddp)
    amp = train_cfg.mixed_precision and device.type == "cuda"
    torch.manual_seed(train_cfg.seed)

    input_shape = model_input_shape(cfg.corruption, splits.image_shape)
    model = build_model(cfg.model, input_shape, splits.image_shape, train_cfg.loss).to(device)
    layout = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    if train_cfg.compile:
        # An instance attribute shadows the method for this run only; removed again below.
        model.losses = torch.compile(model.losses)  # type: ignore[method-assign]
    optimizers = model.make_optimizers(train_cfg.lr)
    share = None if ddp is None else distributed.wrap(model, ddp, device)
    if ddp is not None:
        distributed.seed_model_noise(train_cfg.seed, ddp)
    is_main = ddp is None or ddp.is_main
    autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=amp)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    # The whole set lives on the device; pinned host memory makes the one copy asynchronous.
    host_images = splits.train.pin_memory() if device.type == "cuda" else splits.train
    train_images = host_images.to(device, non_blocking=True)
    val_images = splits.val.to(device).contiguous(memory_format=layout)
    val_inputs = corrupt_fixed(val_images, cfg.corruption).contiguous(memory_format=layout)
    train_labels = val_labels = None
    if needs_labels(model):
        if int(splits.train_labels.min()) < 0:
            raise ValueError(f"model.kind={cfg.model.kind} needs class labels, but {cfg.data.name} has none")
        train_labels, val_labels = splits.train_labels.to(device), splits.val_labels.to(device)
    order_rng = torch.Generator().manual_seed(train_cfg.seed)
    noise_rng = torch.Generator(device=device).manual_seed(train_cfg.seed + 1)

    n_images, batch_size = len(train_images), train_cfg.batch_size
    n_batches = math.ceil(n_images / batch_size)
    if ddp is not None:
        distributed.check_batches(n_images, batch_size, ddp)
    checkpoint = Path(train_cfg.checkpoint_dir) / cfg.name / "last.pt"
    result = TrainResult(model=model, device=str(device), checkpoint=checkpoint, seconds=0.0)
    if train_cfg.resume and ddp is None:
        state, message = resumable_state(checkpoint, cfg, device)
        if state is not None:
            model.load_state_dict(state["model"])
            for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
            restore_rng_states(state["rng"], order_rng, noise_rng, device)
            result.history = [EpochReport(**report) for report in state["history"]]
            result.resumed_from = int(state["epoch"])
        if on_resume is not None:
            on_resume(ResumeNote(checkpoint, result.resumed_from, train_cfg.epochs, message))
    started = time.perf_counter()
    bar = tqdm(
        initial=result.resumed_from * n_batches,
        total=train_cfg.epochs * n_batches,
        unit="batch",
        desc=f"train {cfg.name}",
        disable=not (train_cfg.progress and is_main),
    )
    with bar:
        for epoch in range(result.resumed_from + 1, train_cfg.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n_images, generator=order_rng).to(device)
            sums: dict[str, torch.Tensor] = {}
            for batch_index in range(n_batches):
                index = order[batch_index * batch_size : (batch_index + 1) * batch_size]
                clean = train_images[index].contiguous(memory_format=layout)
                labels = None if train_labels is None else train_labels[index]
                noisy = corrupt(clean, cfg.corruption, noise_rng).contiguous(memory_format=layout)
                if share is not None:  # the same global batch on every rank; each trains on its slice
                    clean, noisy, labels = share.take(clean, noisy, labels)
                terms = model.training_step(noisy, clean, labels, optimizers, autocast)
                if not torch.isfinite(terms["loss"]):
                    raise TrainingDivergedError(
                        f"loss became {terms['loss'].item()} at epoch {epoch}, batch {batch_index + 1} of "
                        f"{n_batches}; lower train.lr or check the data for NaN/inf values"
                    )
                for name, value in terms.items():
                    sums[name] = sums.get(name, torch.zeros((), device=device)) + value.float() * len(clean)
                bar.update(1)
            if share is not None:
                sums = distributed.sum_across(sums)
            means = {name: total.item() / n_images for name, total in sums.items()}
            train_loss = means.pop("loss")
            val_loss = (
                _validation_loss(model, val_inputs, val_images, val_labels, autocast)
                if len(val_images)
                else float("nan")
            )
            seconds = time.perf_counter() - epoch_start
            report = EpochReport(
                epoch, train_cfg.epochs, train_loss, val_loss, seconds, n_images / seconds, means
            )
            result.history.append(report)
            bar.set_postfix(epoch=epoch, train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            if not is_main:
                continue
            save_checkpoint(
                checkpoint,
                {
                    "format": CHECKPOINT_FORMAT,
                    "model": model.state_dict(),
                    "optimizers": [opt.state_dict() for opt in optimizers],
                    "epoch": epoch,
                    "history": [asdict(r) for r in result.history],
                    "config": cfg.model_dump(mode="json"),
                    "device": device.type,
                    "rng": rng_states(order_rng, noise_rng, device),
                },
            )
            if on_epoch is not None:
                on_epoch(report)
    result.seconds = time.perf_counter() - started
    if "losses" in vars(model):  # torch.compile or DDP shadowed the method for this run
        del model.losses
    result.model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    return result


def load_trained(cfg: RunConfig, image_shape: tuple[int, int, int], checkpoint: Path) -> Autoencoder:
    """Rebuild the model from its config and load the weights (tensors only: weights_only=True)."""
    input_shape = model_input_shape(cfg.corruption, image_shape)
    model = build_model(cfg.model, input_shape, image_shape, cfg.train.loss)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()
