"""Figures: the reconstruction grid and loss curves are written as real PNG images."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from components.figures import loss_curves, reconstruction_grid
from components.training import EpochReport


def test_reconstruction_grid_writes_a_png(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    gray = torch.rand((6, 1, 16, 16), generator=generator)
    rgb = torch.rand((6, 3, 16, 16), generator=generator)
    path = reconstruction_grid(
        [("original", gray), ("corrupted", gray.flip(0)), ("colour", rgb)],
        tmp_path / "sub" / "grid.png",
        columns=8,
        title="grid",
    )
    assert path == tmp_path / "sub" / "grid.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        wide, high = image.size
    assert wide > high > 0  # three rows of (at most) six columns: wider than tall


def test_loss_curves_writes_a_png(tmp_path: Path) -> None:
    history = [EpochReport(e, 3, 1.0 / e, 1.2 / e, 0.1, 100.0) for e in range(1, 4)]
    path = loss_curves(history, tmp_path / "loss.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) > 0
