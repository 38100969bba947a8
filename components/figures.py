"""Pictures people judge autoencoders by.

matplotlib's object API (`Figure`, no pyplot): no display, no global state, safe in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from components.training import EpochReport


def _as_image(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.squeeze(0) if tensor.shape[0] == 1 else tensor.permute(1, 2, 0)


def reconstruction_grid(
    rows: Sequence[tuple[str, torch.Tensor]], path: Path, columns: int = 8, title: str | None = None
) -> Path:
    """One row per (label, images) pair, e.g. original / corrupted / output, `columns` images each."""
    columns = min(columns, *(len(images) for _, images in rows))
    fig = Figure(figsize=(1.2 * columns, 1.3 * len(rows)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.imshow(_as_image(images[c].detach().cpu().clamp(0, 1)).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def loss_curves(history: Sequence[EpochReport], path: Path) -> Path:
    epochs = [r.epoch for r in history]
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot(epochs, [r.train_loss for r in history], marker="o", label="train")
    ax.plot(epochs, [r.val_loss for r in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
