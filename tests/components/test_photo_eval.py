"""Whole-image benchmark evaluation: seeded noise at fixed σ, a tuned filter, interpolation baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from components.config import ModelConfig
from components.data import DatasetError
from components.models import build_model
from components.photo_eval import evaluate_denoising, evaluate_superres, load_images


def _write(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(images):
        Image.fromarray(array.astype(np.uint8), mode="L").save(folder / f"{i:02d}.png")
    (folder / "README.md").write_text("not an image")
    return folder


@pytest.fixture
def grey_folder(tmp_path: Path) -> Path:
    """Two mid-grey images with gentle texture, of different sizes: clipping at 0 or 1 is rare."""
    rng = np.random.default_rng(0)
    return _write(
        tmp_path / "grey",
        [128 + rng.integers(-8, 9, size=(120, 130)), 128 + rng.integers(-8, 9, size=(96, 101))],
    )


def _model(kind: str, scale: int) -> torch.nn.Module:
    cfg = ModelConfig(kind=kind, architecture="fcn", channels=[4], residual=True)  # type: ignore[arg-type]
    torch.manual_seed(0)
    return build_model(cfg, (1, 16, 16), (1, 16 * scale, 16 * scale), "mse")


def test_load_images_keeps_each_size(grey_folder: Path) -> None:
    images = load_images(grey_folder)
    assert [tuple(x.shape) for x in images] == [(1, 1, 120, 130), (1, 1, 96, 101)]
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in images)


def test_load_images_errors_on_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images"):
        load_images(tmp_path)


def test_denoising_rows_per_sigma(grey_folder: Path) -> None:
    model = _model("denoise", 1)
    rows = evaluate_denoising(model, grey_folder, sigmas=(15, 25, 50), seed=0)  # type: ignore[arg-type]
    assert [row["sigma"] for row in rows] == [15.0, 25.0, 50.0]
    for row in rows:
        sigma = float(row["sigma"])
        # Unclipped zero-mean noise: MSE ≈ σ², so PSNR ≈ 20·log10(255/σ) (±0.04 dB one standard deviation
        # at these sizes). The scoring clamps to [0, 1]; at σ = 50 that trims the tails 2.5σ out, which
        # can only raise the PSNR, by about 0.1 dB.
        expected = 20 * math.log10(255 / sigma)
        slack = 0.3 if sigma >= 50 else 0.15
        assert expected - 0.15 < float(row["noisy_psnr"]) < expected + slack
        assert float(row["classical_psnr"]) > float(row["noisy_psnr"]) + 3  # a smooth image: filters win
        assert {"noisy_ssim", "classical_ssim", "model_psnr", "model_ssim", "classical_filter"} <= set(row)
        assert row["images"] == 2.0
    # The noise is fixed by the seed: the same numbers twice, other numbers for another seed.
    again = evaluate_denoising(model, grey_folder, sigmas=(25,), seed=0)  # type: ignore[arg-type]
    assert again[0]["model_psnr"] == rows[1]["model_psnr"]
    other = evaluate_denoising(model, grey_folder, sigmas=(25,), seed=1)  # type: ignore[arg-type]
    assert other[0]["noisy_psnr"] != rows[1]["noisy_psnr"]


def test_denoising_can_tune_on_another_folder(grey_folder: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tune = _write(tmp_path / "tune", [128 + rng.integers(-8, 9, size=(40, 40))])
    rows = evaluate_denoising(_model("denoise", 1), grey_folder, sigmas=(25,), tune_folder=tune)  # type: ignore[arg-type]
    assert float(rows[0]["classical_psnr"]) > float(rows[0]["noisy_psnr"])


def test_superres_against_interpolation(tmp_path: Path) -> None:
    # Smooth gradients: bicubic is nearly exact, far better than a constant guess.
    y, x = np.mgrid[0:61, 0:75]
    folder = _write(tmp_path / "smooth", [60 + 1.5 * x + y, 200 - x - 0.5 * y])
    result = evaluate_superres(_model("superres", 2), folder, factor=2)  # type: ignore[arg-type]
    assert result["factor"] == 2.0 and result["images"] == 2.0
    assert result["bicubic_psnr"] > 30 and result["bilinear_psnr"] > 30
    # The untrained residual model starts as bicubic plus a small (not yet learnt) correction.
    assert 25 < result["model_psnr"] < result["bicubic_psnr"]
    assert evaluate_superres(None, folder, factor=4).keys() == {
        "factor", "images", "bicubic_psnr", "bicubic_ssim", "bilinear_psnr", "bilinear_ssim"
    }  # fmt: skip


def test_photo_folder_in_the_config_adds_whole_image_scores(grey_folder: Path, tmp_path: Path) -> None:
    """The flow's comparisons score `eval.photo_folder` when it is set, and refuse a missing one."""
    from components.comparisons import photo_comparison
    from components.presets import load_config

    denoise = load_config(
        "photo-denoise",
        overrides=[f"data.root={grey_folder}", f"eval.photo_folder={grey_folder}", "eval.photo_sigmas=[25]"],
    )
    scores = photo_comparison(_model("denoise", 1), denoise)  # type: ignore[arg-type]
    assert set(scores) == {
        f"photo_s25_{n}_{m}" for n in ("noisy", "classical", "model") for m in ("psnr", "ssim")
    }
    superres = load_config(
        "photo-superres-x2", overrides=[f"data.root={grey_folder}", f"eval.photo_folder={grey_folder}"]
    )
    scores = photo_comparison(_model("superres", 2), superres)  # type: ignore[arg-type]
    assert scores["photo_bicubic_psnr"] > scores["photo_bilinear_psnr"] - 5  # both present and finite
    assert {"photo_model_psnr", "photo_model_ssim"} <= set(scores)
    missing = load_config("photo-denoise", overrides=[f"eval.photo_folder={tmp_path / 'nope'}"])
    with pytest.raises(DatasetError, match="photo_folder"):
        photo_comparison(_model("denoise", 1), missing)  # type: ignore[arg-type]


def test_a_photo_too_small_to_score_is_named(tmp_path: Path) -> None:
    folder = _write(tmp_path / "tiny", [np.full((40, 40), 100), np.full((10, 12), 100)])
    with pytest.raises(DatasetError, match=r"01\.png is 12×10 pixels; .*at least 11×11: remove it"):
        load_images(folder)
