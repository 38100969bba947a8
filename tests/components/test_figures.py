"""Figures: reconstruction grids, loss curves, latent scatters, image grids and strips are real PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from PIL import Image

from components.figures import (
    image_grid,
    interpolation_strips,
    latent_scatter,
    loss_curves,
    reconstruction_grid,
)
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


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG that matplotlib can read back as pixels."""
    with Image.open(path) as image:
        assert image.format == "PNG"
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 0 and pixels.shape[1] > 0
    return pixels.shape[1], pixels.shape[0]


@pytest.mark.parametrize("classes", [None, 4, 15])
def test_latent_scatter_writes_a_png(tmp_path: Path, classes: int | None) -> None:
    rng = np.random.default_rng(0)
    codes = torch.from_numpy(rng.standard_normal((300, 2)).astype(np.float32))
    labels = None if classes is None else rng.integers(0, classes, 300)
    path = latent_scatter(codes, labels, tmp_path / "deep" / "latent.png", title="latent space")
    assert path == tmp_path / "deep" / "latent.png"
    wide, high = png_size(path)
    assert wide >= 300 and high >= 300


def test_latent_scatter_rejects_codes_that_are_not_2d(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        latent_scatter(torch.zeros((5, 3)), None, tmp_path / "latent.png")


def test_image_grid_lays_out_a_square_traversal(tmp_path: Path) -> None:
    tiles = torch.rand((100, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    wide, high = png_size(image_grid(tiles, tmp_path / "grid" / "traversal.png", rows=10))
    assert wide == high >= 200  # 10 × 10 equal tiles, no title: square
    titled = image_grid(tiles, tmp_path / "titled.png", rows=10, title="traversal")
    assert png_size(titled)[1] > high  # the title adds a band on top


def test_image_grid_handles_colour_and_ragged_rows(tmp_path: Path) -> None:
    samples = torch.rand((7, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    wide, high = png_size(image_grid(samples, tmp_path / "samples.png", rows=2, title="samples"))
    assert wide > high > 0  # 2 rows of 4


def test_interpolation_strips_one_row_per_pair(tmp_path: Path) -> None:
    strips = torch.rand((3, 8, 1, 10, 10), generator=torch.Generator().manual_seed(2))
    path = interpolation_strips(strips, tmp_path / "a" / "b" / "interp.png", title="a → b")
    wide, high = png_size(path)
    assert wide > 2 * high > 0  # 3 rows of 8
    with pytest.raises(ValueError, match="pairs, steps"):
        interpolation_strips(strips[0], tmp_path / "bad.png")
