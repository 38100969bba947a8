"""Pictures people judge autoencoders by.

matplotlib's object API (`Figure`, no pyplot): no display, no global state, safe in worker threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

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


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def latent_scatter(
    codes_2d: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None,
    path: Path,
    title: str | None = None,
) -> Path:
    """Codes (N, 2) as points coloured by class: how the classes arrange themselves in a 2-D latent.

    Up to ten classes get a legend (one colour each); more get a colourbar. Missing labels (None,
    or negative as in unlabelled data) give plain points. Higher-dimensional codes must be
    projected to 2-D first (e.g. with PCA).
    """
    points = _numpy(codes_2d).reshape(len(codes_2d), -1)
    if points.shape[1] != 2:
        raise ValueError(f"expected codes of shape (N, 2), got {points.shape}")
    classes = None if labels is None else _numpy(labels).reshape(-1)
    if classes is not None and (len(classes) != len(points) or (classes < 0).any()):
        classes = None
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    size = max(2.0, min(20.0, 4000.0 / max(len(points), 1)))
    if classes is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.7)
    elif len(np.unique(classes)) <= 10:
        for index, value in enumerate(np.unique(classes)):
            chosen = classes == value
            ax.scatter(points[chosen, 0], points[chosen, 1], s=size, alpha=0.7, color=f"C{index}",
                       label=str(value))  # fmt: skip
        ax.legend(title="label", markerscale=max(1.0, 20.0 / size), fontsize="small", loc="best")
    else:
        cloud = ax.scatter(points[:, 0], points[:, 1], c=classes, cmap="viridis", s=size, alpha=0.7)
        fig.colorbar(cloud, ax=ax, label="label")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _mosaic(images: torch.Tensor, per_row: int, padding: int) -> np.ndarray:
    """Tile (N, C, H, W) images into one (H', W') or (H', W', 3) array, white between tiles."""
    grid = make_grid(images.detach().cpu().float().clamp(0, 1), nrow=per_row, padding=padding, pad_value=1.0)
    if images.shape[1] == 1:  # make_grid repeats one channel into three; keep a single gray one
        return grid[0].numpy()
    return grid.permute(1, 2, 0).numpy()


def _mosaic_figure(mosaic: np.ndarray, width: float, title: str | None) -> Figure:
    """A figure `width` inches wide that is just the mosaic (plus a title band when there is a title)."""
    title_band = 0.4 if title else 0.0
    height = width * mosaic.shape[0] / mosaic.shape[1]
    fig = Figure(figsize=(width, height + title_band))
    ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + title_band)))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, y=1.0 - 0.1 / (height + title_band), va="top")
    return fig


def image_grid(images: torch.Tensor, path: Path, rows: int, title: str | None = None) -> Path:
    """(N, C, H, W) images in `rows` rows, tiles touching: prior samples or a 10×10 latent traversal.

    Image i is drawn at row i // columns, column i % columns, which is the order
    `components.generation.traversal_codes` lays its codes out in.
    """
    if rows < 1 or len(images) == 0:
        raise ValueError(f"need at least one row and one image, got rows={rows}, {len(images)} images")
    columns = math.ceil(len(images) / rows)
    mosaic = _mosaic(images, per_row=columns, padding=0)
    # About 0.6 inch per tile, but never wider than 8 inches nor narrower than 2.
    fig = _mosaic_figure(mosaic, width=min(8.0, max(2.0, 0.6 * columns)), title=title)
    return _save(fig, path)


def interpolation_strips(strips: torch.Tensor, path: Path, title: str | None = None) -> Path:
    """One row per pair from (pairs, steps, C, H, W): a's reconstruction on the left, b's on the right."""
    if strips.dim() != 5:
        raise ValueError(f"expected strips (pairs, steps, C, H, W), got shape {tuple(strips.shape)}")
    steps = strips.shape[1]
    mosaic = _mosaic(strips.flatten(0, 1), per_row=steps, padding=1)
    fig = _mosaic_figure(mosaic, width=min(12.0, max(2.0, 0.6 * steps)), title=title)
    return _save(fig, path)
