"""Held-out evaluation: MSE / PSNR / SSIM of the model and of the do-nothing baseline.

PSNR and SSIM come from scikit-image, computed per image with an explicit data range of 1.0
and then averaged (mean of per-image PSNR, not PSNR of the mean MSE). SSIM uses the usual
Gaussian window (σ = 1.5) without sample-covariance correction, as in Wang et al. (2004).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from components.config import RunConfig
from components.corruption import corrupt_fixed, trivial_baseline
from components.data import ImageSplits
from components.models import Autoencoder


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    clean: torch.Tensor
    corrupted: torch.Tensor
    output: torch.Tensor


@torch.no_grad()
def predict(
    model: Autoencoder, inputs: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 512
) -> torch.Tensor:
    """Reconstructions in [0, 1]; labels are passed only to conditional models."""
    model.eval()
    use = labels if model.conditional else None
    parts = [
        model(inputs[i : i + batch_size], None if use is None else use[i : i + batch_size])
        for i in range(0, len(inputs), batch_size)
    ]
    return torch.cat(parts)


@torch.no_grad()
def encode_all(
    model: Autoencoder, inputs: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 512
) -> torch.Tensor:
    model.eval()
    use = labels if model.conditional else None
    parts = [
        model.encode(inputs[i : i + batch_size], None if use is None else use[i : i + batch_size])
        for i in range(0, len(inputs), batch_size)
    ]
    return torch.cat(parts)


@torch.no_grad()
def mean_loss(
    model: Autoencoder,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 512,
) -> float:
    """The training objective on held-out data (for a VAE: the negative ELBO, one sample, seeded)."""
    model.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    total = 0.0
    for i in range(0, len(inputs), batch_size):
        part = slice(i, i + batch_size)
        y = labels[part] if model.conditional else None
        total += float(model.losses(inputs[part], targets[part], y)["loss"]) * len(inputs[part])
    torch.random.set_rng_state(state)
    return total / max(len(inputs), 1)


def image_quality(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean MSE, PSNR (dB) and SSIM over images; both tensors (N, C, H, W) in [0, 1]."""
    if output.shape != target.shape:
        raise ValueError(f"output shape {tuple(output.shape)} differs from target {tuple(target.shape)}")
    out_np = output.detach().cpu().double().clamp(0, 1).numpy()
    ref_np = target.detach().cpu().double().numpy()
    mse = ((out_np - ref_np) ** 2).reshape(len(out_np), -1).mean(axis=1)
    # A perfect image has infinite PSNR; cap it at 100 dB so averages stay finite.
    psnr = [
        min(peak_signal_noise_ratio(r, o, data_range=1.0), 100.0) if m > 0 else 100.0
        for o, r, m in zip(out_np, ref_np, mse, strict=True)
    ]
    ssim = [
        structural_similarity(
            r,
            o,
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for o, r in zip(out_np, ref_np, strict=True)
    ]
    return {"mse": float(mse.mean()), "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def evaluate(
    model: Autoencoder, splits: ImageSplits, cfg: RunConfig, corrupted: torch.Tensor | None = None
) -> Evaluation:
    """Score the model on the test split against the clean images, next to the trivial baseline.

    `corrupted` is the fixed evaluation corruption of the test split; made here when not given.
    """
    clean = splits.test
    corrupted = corrupt_fixed(clean, cfg.corruption) if corrupted is None else corrupted
    output = predict(model, corrupted, splits.test_labels)
    baseline = trivial_baseline(corrupted, cfg.corruption, size=(clean.shape[-2], clean.shape[-1]))
    ours, theirs = image_quality(output, clean), image_quality(baseline, clean)
    metrics = {f"test_{k}": v for k, v in ours.items()}
    metrics |= {f"baseline_{k}": v for k, v in theirs.items()}
    metrics["psnr_gain_db"] = ours["psnr"] - theirs["psnr"]
    metrics["test_loss"] = mean_loss(model, corrupted, clean, splits.test_labels)
    return Evaluation(metrics=metrics, clean=clean, corrupted=corrupted, output=output)
