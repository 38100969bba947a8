"""Evaluation metrics against independent numpy / scikit-image computations, and `evaluate` end to end."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from components.config import CorruptionConfig, RunConfig
from components.corruption import corrupt_fixed, trivial_baseline
from components.data import ImageSplits
from components.evaluation import evaluate, image_quality, per_image_ssim, predict
from components.models import build_model

if TYPE_CHECKING:
    from conftest import Trained


def _rand(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _skimage_ssim(out: np.ndarray, ref: np.ndarray) -> list[float]:
    """scikit-image's SSIM of each image pair, with the settings the evaluation documents."""
    return [
        structural_similarity(
            r,
            o,
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for o, r in zip(out, ref, strict=True)
    ]


def test_identical_images_are_perfect() -> None:
    images = _rand((4, 1, 16, 16))
    quality = image_quality(images, images.clone())
    assert quality["mse"] == 0.0
    assert quality["psnr"] == 100.0  # the documented cap for infinite PSNR
    assert quality["ssim"] == pytest.approx(1.0, abs=1e-9)


def test_uniform_offset_gives_the_known_mse_and_psnr() -> None:
    target = 0.9 * _rand((4, 1, 16, 16))  # room for +0.1 without leaving [0, 1]
    quality = image_quality(target + 0.1, target)
    assert quality["mse"] == pytest.approx(0.01, rel=1e-5)
    assert quality["psnr"] == pytest.approx(20.0, abs=1e-3)  # 10·log10(1 / 0.01)
    assert quality["ssim"] < 1.0


@pytest.mark.parametrize("shape", [(7, 1, 28, 28), (3, 3, 11, 19), (2, 2, 32, 12)])
def test_stacked_ssim_is_scikit_images_per_image(shape: tuple[int, ...]) -> None:
    """Every image's SSIM, not just the mean: rectangular, multi-channel and minimum-size images."""
    rng = np.random.default_rng(sum(shape))
    ref = rng.random(shape)
    out = np.clip(ref + rng.normal(0, 0.2, shape), 0, 1)
    out[0] = ref[0]  # a perfect image scores exactly 1
    expected = _skimage_ssim(out, ref)
    np.testing.assert_allclose(per_image_ssim(out, ref), expected, rtol=0, atol=1e-12)


def test_ssim_refuses_images_smaller_than_its_window() -> None:
    tiny = np.zeros((2, 1, 10, 28))
    with pytest.raises(ValueError, match=r"at least 11×11 pixels.*got 10×28.*data.image_size"):
        per_image_ssim(tiny, tiny)


def test_ssim_says_what_it_compares() -> None:
    stack = np.zeros((2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"two \(N, C, H, W\) stacks of the same shape"):
        per_image_ssim(stack[:, 0], stack[:, 0])
    with pytest.raises(ValueError, match="same shape"):
        per_image_ssim(stack, stack[:1])
    assert per_image_ssim(stack[:0], stack[:0]).shape == (0,)


def test_metrics_are_means_of_per_image_values() -> None:
    target = _rand((5, 3, 16, 16), seed=1)
    noisy = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    quality = image_quality(noisy, target)

    out, ref = noisy.double().numpy(), target.double().numpy()
    per_image_mse = ((out - ref) ** 2).reshape(len(out), -1).mean(axis=1)
    per_image_psnr = [10 * math.log10(1.0 / m) for m in per_image_mse]
    per_image_ssim = _skimage_ssim(out, ref)
    assert quality["mse"] == pytest.approx(float(per_image_mse.mean()), rel=1e-9)
    assert quality["psnr"] == pytest.approx(float(np.mean(per_image_psnr)), rel=1e-9)
    assert quality["ssim"] == pytest.approx(float(np.mean(per_image_ssim)), rel=1e-9)
    # More noise scores worse on every metric.
    worse = image_quality((target + 0.3).clamp(0, 1), target)
    assert worse["mse"] > quality["mse"]
    assert worse["psnr"] < quality["psnr"]


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        image_quality(_rand((2, 1, 16, 16)), _rand((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="shape"):
        image_quality(_rand((3, 1, 16, 16)), _rand((2, 1, 16, 16)))


def test_evaluate_scores_model_and_baseline(trained: Trained) -> None:
    cfg, splits, model = trained.cfg, trained.splits, trained.result.model
    assert cfg.corruption.kind == "gaussian"
    result = evaluate(model, splits, cfg)

    corrupted = corrupt_fixed(splits.test, cfg.corruption)
    assert torch.equal(result.corrupted, corrupted)
    assert torch.equal(result.clean, splits.test)
    keys = {f"{who}_{m}" for who in ("test", "baseline") for m in ("mse", "psnr", "ssim")}
    assert keys <= set(result.metrics)

    # For noise the do-nothing baseline is the noisy image itself.
    baseline = image_quality(corrupted, splits.test)
    for metric, value in baseline.items():
        assert result.metrics[f"baseline_{metric}"] == pytest.approx(value, rel=1e-9)
    ours = image_quality(predict(model, corrupted), splits.test)
    for metric, value in ours.items():
        assert result.metrics[f"test_{metric}"] == pytest.approx(value, rel=1e-9)
    assert result.metrics["psnr_gain_db"] == pytest.approx(ours["psnr"] - baseline["psnr"])
    assert result.output.shape == splits.test.shape

    # Handing in the corrupted images gives the same scores.
    again = evaluate(model, splits, cfg, corrupted=corrupted)
    assert again.metrics == result.metrics


def test_evaluate_downsampling_compares_at_full_size(digits_splits: ImageSplits) -> None:
    cfg = RunConfig(corruption=CorruptionConfig(kind="downsample", factor=2), data={"image_size": 16})
    c, h, w = digits_splits.image_shape
    torch.manual_seed(0)
    model = build_model(cfg.model, (c, h // 2, w // 2), (c, h, w))
    result = evaluate(model, digits_splits, cfg)

    assert result.corrupted.shape == (len(digits_splits.test), c, h // 2, w // 2)
    assert result.output.shape == digits_splits.test.shape
    upsampled = trivial_baseline(result.corrupted, cfg.corruption, size=(h, w))
    assert result.metrics["baseline_mse"] == pytest.approx(
        image_quality(upsampled, digits_splits.test)["mse"]
    )
