"""Classical baselines: PCA reconstructions, kNN on codes, tuned filters, interpolation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.baselines import (
    DENOISE_GRID,
    classical_denoise,
    knn_accuracy,
    mean_psnr,
    pca_reconstruction,
    tuned_classical_denoise,
    upsample,
)


def low_rank_images(n: int, seed: int, rank: int = 6) -> torch.Tensor:
    """4×4 images near a `rank`-dimensional subspace (plus a little noise), inside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn((rank, 16), generator=torch.Generator().manual_seed(123))
    weights = torch.randn((n, rank), generator=g) * torch.linspace(1.0, 0.2, rank)
    flat = 0.5 + 0.05 * (weights @ basis) + 0.01 * torch.randn((n, 16), generator=g)
    return flat.clamp(0, 1).reshape(n, 1, 4, 4)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random blobs: sums of a few wide sinusoids, scaled into [0.2, 0.8]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phases = 2 * math.pi * torch.rand((n, 2), generator=g)
    freq = 1.0 + 2.0 * torch.rand((n, 2), generator=g)
    wave = torch.sin(freq[:, :1, None] * 2 * math.pi * xx + phases[:, :1, None])
    wave = wave + torch.cos(freq[:, 1:, None] * 2 * math.pi * yy + phases[:, 1:, None])
    return (0.5 + 0.15 * wave).unsqueeze(1)


# --- PCA ----------------------------------------------------------------------------------------
def test_pca_with_every_component_is_exact() -> None:
    train, inputs = low_rank_images(200, seed=0), torch.rand((30, 1, 4, 4), generator=torch.Generator())
    result = pca_reconstruction(train, inputs, n_components=16)
    assert result.reconstruction.shape == inputs.shape
    assert result.reconstruction.dtype == inputs.dtype
    assert (result.reconstruction - inputs).abs().max() < 1e-4
    assert result.train_codes.shape == (200, 16) and result.input_codes.shape == (30, 16)


def test_pca_error_falls_as_components_grow() -> None:
    train, inputs = low_rank_images(300, seed=0), low_rank_images(50, seed=1)
    mse = []
    for n in (1, 2, 4, 8):
        result = pca_reconstruction(train, inputs, n_components=n)
        assert result.input_codes.shape == (50, n)
        assert float(result.reconstruction.min()) >= 0.0 and float(result.reconstruction.max()) <= 1.0
        mse.append(float(((result.reconstruction - inputs) ** 2).mean()))
    assert all(a > b for a, b in itertools.pairwise(mse))
    assert mse[-1] < 0.05 * mse[0]


def test_pca_rejects_too_many_components() -> None:
    train = low_rank_images(10, seed=0)
    with pytest.raises(ValueError, match="min\\(n_samples, n_features\\)"):
        pca_reconstruction(train, train, n_components=11)  # more than the 10 samples
    with pytest.raises(ValueError, match="n_components=17"):
        pca_reconstruction(low_rank_images(100, seed=0), train, n_components=17)  # more than 16 pixels
    with pytest.raises(ValueError):
        pca_reconstruction(train, train, n_components=0)


# --- kNN ----------------------------------------------------------------------------------------
def clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    centres = 10.0 * np.eye(4, 6)
    return centres[labels] + 0.5 * rng.standard_normal((n, 6)), labels


def test_knn_is_perfect_on_separated_clusters() -> None:
    train_codes, train_labels = clusters(200, seed=0)
    test_codes, test_labels = clusters(100, seed=1)
    as_maps = torch.from_numpy(test_codes).reshape(100, 1, 2, 3)  # codes of any shape are flattened
    assert knn_accuracy(train_codes, train_labels, as_maps, torch.from_numpy(test_labels), k=5) == 1.0


def test_knn_is_at_chance_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((2000, 6)), rng.standard_normal((2000, 6))
    accuracy = knn_accuracy(train, rng.integers(0, 4, 2000), test, rng.integers(0, 4, 2000), k=5)
    assert abs(accuracy - 0.25) < 0.04


def test_knn_needs_labels() -> None:
    codes, labels = clusters(20, seed=0)
    with pytest.raises(ValueError, match="needs labels"):
        knn_accuracy(codes, np.full(20, -1), codes, labels)
    with pytest.raises(ValueError, match="needs labels"):
        knn_accuracy(codes, labels, codes, np.full(20, -1))
    with pytest.raises(ValueError, match="k=50"):
        knn_accuracy(codes, labels, codes, labels, k=50)


# --- Classical denoising ------------------------------------------------------------------------
def test_filters_improve_psnr_on_a_smooth_noisy_image() -> None:
    clean = smooth_images(4)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    before = mean_psnr(noisy, clean)
    for method, strength in (("median", 3), ("gaussian", 1.0)):
        out = classical_denoise(noisy, method, strength)  # type: ignore[arg-type]
        assert out.shape == noisy.shape and out.dtype == noisy.dtype
        assert mean_psnr(out, clean) > before + 3.0


def test_filters_act_per_image_and_channel() -> None:
    images = torch.zeros((2, 3, 9, 9))
    images[0, 1, 4, 4] = 1.0  # one bright pixel in one channel of one image
    out = classical_denoise(images, "gaussian", 1.0)
    assert float(out[0, 1].sum()) == pytest.approx(1.0, rel=1e-3)  # spread spatially, mass kept
    assert float(out[0, 0].abs().sum()) == 0.0 and float(out[1].abs().sum()) == 0.0
    assert float(classical_denoise(images, "median", 3).abs().sum()) == 0.0  # an isolated pixel is removed
    with pytest.raises(ValueError, match="odd"):
        classical_denoise(images, "median", 4)


def salt_and_pepper(clean: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
    draw = torch.rand(clean.shape, generator=torch.Generator().manual_seed(seed))
    return torch.where(draw < amount / 2, 1.0, torch.where(draw < amount, 0.0, clean))


def test_tuned_denoise_chooses_on_validation_not_test() -> None:
    """Validation has Gaussian noise (a Gaussian filter wins there), test salt-and-pepper (median wins)."""
    clean_val, clean_test = smooth_images(6, seed=1), smooth_images(6, seed=2)
    noisy_val = clean_val + 0.08 * torch.randn(clean_val.shape, generator=torch.Generator().manual_seed(3))
    noisy_test = salt_and_pepper(clean_test, amount=0.2, seed=4)
    out, chosen = tuned_classical_denoise(noisy_val, clean_val, noisy_test)
    assert chosen["method"] == "gaussian"
    strength = float(chosen["strength"])
    torch.testing.assert_close(out, classical_denoise(noisy_test, "gaussian", strength))
    val_scores = {(m, s): mean_psnr(classical_denoise(noisy_val, m, s), clean_val) for m, s in DENOISE_GRID}
    assert chosen["val_psnr"] == pytest.approx(max(val_scores.values()))
    assert val_scores[("gaussian", strength)] == pytest.approx(chosen["val_psnr"])
    # On the test inputs a median filter would have done better: the choice did not look at them.
    median_on_test = mean_psnr(classical_denoise(noisy_test, "median", 3), clean_test)
    assert median_on_test > mean_psnr(out, clean_test) + 3.0


# --- Upsampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
def test_upsample_shapes_and_range(mode: str) -> None:
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2).float()
    low = checker.expand(2, 3, 8, 8)  # sharp 0/1 edges: bicubic overshoots them before the clamp
    high = upsample(low, (16, 24), mode)  # type: ignore[arg-type]
    assert high.shape == (2, 3, 16, 24)
    assert float(high.min()) >= 0.0 and float(high.max()) <= 1.0
    if mode == "bicubic":
        unclamped = F.interpolate(low, size=(16, 24), mode="bicubic", align_corners=False)
        assert float(unclamped.max()) > 1.0  # the clamp really mattered here


def test_nearest_upsampling_repeats_pixels() -> None:
    low = torch.rand((1, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    expected = low.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(upsample(low, (6, 6), "nearest"), expected)
