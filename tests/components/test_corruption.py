"""Corruptions: their statistics on large batches, their geometry, and their reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from components.config import CorruptionConfig
from components.corruption import (
    corrupt,
    corrupt_fixed,
    downsample,
    gaussian_noise,
    model_input_shape,
    random_mask,
    salt_and_pepper,
    trivial_baseline,
)

# Tolerances are this many standard errors of the estimate: a false failure is then far below 1e-6.
SIGMAS = 5


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_without_clip_has_the_requested_mean_and_std() -> None:
    level, mean, std = 0.3, 0.5, 0.5
    clean = torch.full((64, 1, 32, 32), level)
    n = clean.numel()
    noisy = gaussian_noise(clean, mean=mean, std=std, clip=False, generator=_gen())
    added = noisy - clean

    assert noisy.shape == clean.shape
    # Standard error of the sample mean is std/√n; of the sample std (normal data) about std/√(2n).
    assert abs(added.mean().item() - mean) < SIGMAS * std / math.sqrt(n)
    assert abs(added.std().item() - std) < SIGMAS * std / math.sqrt(2 * n)
    assert noisy.min() < 0.0 and noisy.max() > 1.0  # unclipped noise this strong leaves [0, 1]


def test_gaussian_with_clip_stays_in_unit_range() -> None:
    clean = torch.full((64, 1, 32, 32), 0.3)
    noisy = gaussian_noise(clean, mean=0.5, std=0.5, clip=True, generator=_gen())
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert (noisy == 0.0).any() and (noisy == 1.0).any()  # clipping really happened on both sides
    inside = (noisy > 0) & (noisy < 1)
    assert inside.float().mean() > 0.3  # most values are untouched noise, not all clipped


@pytest.mark.parametrize("amount", [0.1, 0.3])
def test_salt_and_pepper_hits_the_requested_fraction_half_white_half_black(amount: float) -> None:
    clean = torch.full((64, 3, 32, 32), 0.5)  # mid-grey: every hit is a visible change
    out = salt_and_pepper(clean, amount, generator=_gen())
    pixels = 64 * 32 * 32
    changed = (out != clean).any(dim=1)
    white = (out == 1.0).all(dim=1)
    black = (out == 0.0).all(dim=1)

    # A hit covers all channels of a pixel: a changed pixel is entirely white or entirely black.
    assert torch.equal(changed, white | black)
    assert torch.equal(out[~changed.unsqueeze(1).expand_as(out)], clean[~changed.unsqueeze(1).expand_as(out)])
    se = math.sqrt(amount * (1 - amount) / pixels)
    assert abs(changed.float().mean().item() - amount) < SIGMAS * se
    half_se = math.sqrt(amount / 2 * (1 - amount / 2) / pixels)
    assert abs(white.float().mean().item() - amount / 2) < SIGMAS * half_se
    assert abs(black.float().mean().item() - amount / 2) < SIGMAS * half_se


def test_mask_zeroes_the_requested_fraction_of_aligned_patches() -> None:
    fraction, patch, side = 0.25, 4, 32
    clean = torch.ones((64, 3, side, side))
    out = random_mask(clean, fraction, patch, generator=_gen())

    assert out.shape == clean.shape
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    # Cut into patch×patch tiles: every tile (across all channels) is either all zero or untouched.
    tiles = out.reshape(64, 3, side // patch, patch, side // patch, patch)
    tile_max = tiles.amax(dim=(1, 3, 5))
    tile_min = tiles.amin(dim=(1, 3, 5))
    assert torch.equal(tile_max, tile_min)
    n_tiles = tile_max.numel()
    zeroed = (tile_max == 0).float().mean().item()
    assert abs(zeroed - fraction) < SIGMAS * math.sqrt(fraction * (1 - fraction) / n_tiles)


def test_mask_keeps_sizes_that_are_not_a_multiple_of_the_patch() -> None:
    clean = torch.ones((8, 1, 30, 30))
    out = random_mask(clean, 0.5, 4, generator=_gen())
    assert out.shape == clean.shape
    assert (out == 0).any() and (out == 1).any()


def _block_average(x: torch.Tensor, factor: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_downsample_shapes_and_range(factor: int, mode: str) -> None:
    clean = torch.rand((5, 3, 32, 32), generator=_gen())
    small = downsample(clean, factor, mode)
    assert small.shape == (5, 3, 32 // factor, 32 // factor)
    assert small.min() >= 0.0 and small.max() <= 1.0
    # A constant image stays that constant in every mode.
    flat = downsample(torch.full((2, 1, 32, 32), 0.25), factor, mode)
    assert torch.allclose(flat, torch.full_like(flat, 0.25), atol=1e-6)
    # All modes stay close to the block average (they differ only in their weighting).
    assert (small - _block_average(clean, factor)).abs().mean() < 0.15


@pytest.mark.parametrize("factor", [2, 4])
def test_area_downsample_is_the_block_average(factor: int) -> None:
    clean = torch.rand((4, 2, 16, 16), generator=_gen())
    assert torch.allclose(downsample(clean, factor, "area"), _block_average(clean, factor), atol=1e-6)


RANDOM_KINDS = [
    CorruptionConfig(kind="gaussian", mean=0.0, std=0.3),
    CorruptionConfig(kind="salt-pepper", amount=0.2),
    CorruptionConfig(kind="mask", mask_fraction=0.3, mask_patch=2),
]


@pytest.mark.parametrize("cfg", RANDOM_KINDS, ids=lambda c: c.kind)
def test_same_seed_same_corruption_other_seed_different(cfg: CorruptionConfig) -> None:
    clean = torch.rand((16, 1, 16, 16), generator=_gen(7))
    a = corrupt(clean, cfg, _gen(1))
    b = corrupt(clean, cfg, _gen(1))
    c = corrupt(clean, cfg, _gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, clean)


def test_none_and_downsample_are_deterministic() -> None:
    clean = torch.rand((4, 1, 16, 16), generator=_gen())
    assert torch.equal(corrupt(clean, CorruptionConfig(kind="none"), _gen(1)), clean)
    down = CorruptionConfig(kind="downsample", factor=2, mode="area")
    assert torch.equal(corrupt(clean, down, _gen(1)), corrupt(clean, down, _gen(2)))


@pytest.mark.parametrize("cfg", RANDOM_KINDS, ids=lambda c: c.kind)
def test_corrupt_fixed_is_reproducible_and_follows_eval_seed(cfg: CorruptionConfig) -> None:
    clean = torch.rand((40, 1, 16, 16), generator=_gen(3))
    first = corrupt_fixed(clean, cfg)
    torch.manual_seed(999)  # the global RNG must not matter
    torch.rand(10)
    again = corrupt_fixed(clean, cfg)
    assert torch.equal(first, again)
    assert first.shape == clean.shape
    other = corrupt_fixed(clean, cfg.model_copy(update={"eval_seed": cfg.eval_seed + 1}))
    assert not torch.equal(first, other)


def test_corrupt_fixed_batches_downsampling_consistently() -> None:
    clean = torch.rand((10, 1, 16, 16), generator=_gen())
    cfg = CorruptionConfig(kind="downsample", factor=4)
    assert torch.equal(corrupt_fixed(clean, cfg, batch_size=3), downsample(clean, 4, cfg.mode))


def test_model_input_shape() -> None:
    assert model_input_shape(CorruptionConfig(kind="downsample", factor=4), (3, 32, 32)) == (3, 8, 8)
    assert model_input_shape(CorruptionConfig(kind="downsample", factor=2), (1, 28, 28)) == (1, 14, 14)
    for kind in ("none", "gaussian", "salt-pepper", "mask"):
        assert model_input_shape(CorruptionConfig(kind=kind), (3, 32, 32)) == (3, 32, 32)  # type: ignore[arg-type]


def test_trivial_baseline_upsamples_downsampled_images_back() -> None:
    cfg = CorruptionConfig(kind="downsample", factor=4)
    clean = torch.rand((3, 1, 32, 32), generator=_gen())
    small = corrupt_fixed(clean, cfg)
    baseline = trivial_baseline(small, cfg, size=(32, 32))
    assert baseline.shape == clean.shape
    assert baseline.min() >= 0.0 and baseline.max() <= 1.0
    constant = trivial_baseline(torch.full((1, 1, 8, 8), 0.6), cfg, size=(32, 32))
    assert torch.allclose(constant, torch.full_like(constant, 0.6), atol=1e-6)


def test_trivial_baseline_is_the_clipped_input_otherwise() -> None:
    cfg = CorruptionConfig(kind="gaussian", clip=False, std=0.5)
    noisy = corrupt_fixed(torch.full((4, 1, 16, 16), 0.5), cfg)
    baseline = trivial_baseline(noisy, cfg, size=(16, 16))
    assert torch.equal(baseline, noisy.clamp(0, 1))
