"""Training throughput: aeflow's `fit` against the lesson-style loop, same model, data and epochs.

The lesson-style loop is what the curriculum's notebook does: a torchvision dataset that turns
each image into a tensor with `ToTensor` as it is drawn, a `DataLoader` with batch 256, and the
model in torch's default (NCHW) layout. `fit` keeps the set as one tensor, draws batches by
index and runs the conv layers in channels_last. Both start from the same seeded weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor

from benchmarks.lesson_graph import LessonGraph
from components.config import RunConfig
from components.data import ImageSplits
from components.models import build_model
from components.training import fit, select_device


class PilImages(Dataset[tuple[torch.Tensor, int]]):
    """uint8 images handed out as PIL images through a transform: torchvision's MNIST, for any data."""

    def __init__(self, images: torch.Tensor) -> None:
        self.pixels = (images[:, 0] * 255).round().to(torch.uint8).numpy()
        self.transform = ToTensor()

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.pixels[index], mode="L")), 0


def lesson_dataset(cfg: RunConfig, splits: ImageSplits) -> Dataset[tuple[torch.Tensor, int]]:
    """torchvision's own MNIST class when the data is MNIST (what the lesson uses), else PIL images."""
    if cfg.data.name == "mnist" and cfg.data.limit is None:
        mnist = torchvision.datasets.MNIST(str(cfg.data.root), train=True, transform=ToTensor())
        if len(mnist) == len(splits.train):
            return mnist
    return PilImages(splits.train)


@dataclass(frozen=True)
class LoopResult:
    images_per_second: float
    final_loss: float  # mean BCE per pixel over the last epoch
    test_loss: float
    seconds: float


def held_out_loss(model: nn.Module, images: torch.Tensor) -> float:
    """Mean BCE per pixel of the model's reconstructions (both kinds of model end in a sigmoid)."""
    with torch.inference_mode():
        return float(F.binary_cross_entropy(model(images.contiguous()).float(), images))


def lesson_loop(cfg: RunConfig, splits: ImageSplits, epochs: int) -> LoopResult:
    """The notebook's loop: per-sample ToTensor, DataLoader(batch 256, shuffle), Adam, BCE."""
    device = select_device(cfg.train.device)  # on a GPU each batch is copied over, as the notebook does
    torch.manual_seed(cfg.train.seed)
    # The same weights in the notebook's layer order (ReLU then pool, upsampling as its own op):
    # aeflow's faster equivalents of those layers belong to its side of the comparison.
    model = LessonGraph(build_model(cfg.model, splits.image_shape, splits.image_shape, "bce")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loader = DataLoader(lesson_dataset(cfg, splits), batch_size=cfg.train.batch_size, shuffle=True)
    started = time.perf_counter()
    seen, last_epoch_loss = 0, 0.0
    for _ in range(epochs):
        total, count = 0.0, 0
        model.train()
        for batch, _labels in loader:
            images = batch.to(device)
            optimizer.zero_grad()
            reconstruction = model(images)  # ends in a sigmoid, as the notebook's network does
            loss = F.binary_cross_entropy(reconstruction, images)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
            count += len(images)
        seen += count
        last_epoch_loss = total / count
    seconds = time.perf_counter() - started
    test_loss = held_out_loss(model.cpu().eval(), splits.test)
    return LoopResult(seen / seconds, last_epoch_loss, test_loss, seconds)


def aeflow_fit(cfg: RunConfig, splits: ImageSplits, epochs: int, **train: object) -> LoopResult:
    """`fit` with validation off (the lesson loop has none); `train` overrides train.* fields."""
    update = {"epochs": epochs, "progress": False, **train}
    run = cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})
    no_val = ImageSplits(
        train=splits.train,
        train_labels=splits.train_labels,
        val=splits.val[:0],
        val_labels=splits.val_labels[:0],
        test=splits.test,
        test_labels=splits.test_labels,
    )
    started = time.perf_counter()
    result = fit(run, no_val)
    seconds = time.perf_counter() - started
    return LoopResult(
        len(splits.train) * epochs / seconds,
        result.history[-1].train_loss,
        held_out_loss(result.model, splits.test),
        seconds,
    )


# What each step adds: preloading alone (NCHW), then the default channels_last, then compile.
FIT_VARIANTS: dict[str, dict[str, object]] = {
    "aeflow fit, NCHW": {"channels_last": False},
    "aeflow fit (default: channels_last)": {},
    "aeflow fit, channels_last + torch.compile": {"compile": True},
}


def compare_loops(
    cfg: RunConfig, splits: ImageSplits, epochs: int, rounds: int, compile_too: bool = True
) -> list[str]:
    """Alternate the loops `rounds` times, so drifting machine load hits all of them alike."""
    variants = {k: v for k, v in FIT_VARIANTS.items() if compile_too or "compile" not in v}
    rows = [
        "| round | loop | images/s | final train loss | test loss (BCE/pixel) | seconds |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    losses: dict[str, list[float]] = {"lesson-style loop": [], **{name: [] for name in variants}}
    for round_ in range(1, rounds + 1):
        # Each round its own seed (weights and order), the same for every loop within the round.
        seeded = cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + round_})}
        )
        results = {"lesson-style loop": lesson_loop(seeded, splits, epochs)}
        for name, train in variants.items():
            results[name] = aeflow_fit(seeded, splits, epochs, **train)
            ratios[name].append(
                results[name].images_per_second / results["lesson-style loop"].images_per_second
            )
        for name, r in results.items():
            losses[name].append(r.test_loss)
            rows.append(f"| {round_} (seed {seeded.train.seed}) | {name} | {r.images_per_second:,.0f} | "
                        f"{r.final_loss:.4f} | {r.test_loss:.4f} | {r.seconds:.1f} |")  # fmt: skip
            print(rows[-1], flush=True)
    rows += ["", "| loop | median speed-up over the lesson-style loop | per round | median test loss |",
             "|---|---:|---|---:|"]  # fmt: skip
    rows.append(f"| lesson-style loop | 1.00× | | {float(np.median(losses['lesson-style loop'])):.4f} |")
    for name, values in ratios.items():
        per_round = ", ".join(f"{v:.2f}×" for v in values)
        loss = float(np.median(losses[name]))
        rows.append(f"| {name} | **{float(np.median(values)):.2f}×** | {per_round} | {loss:.4f} |")
    return rows
