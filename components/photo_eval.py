"""Benchmark-style evaluation on whole photographs: a folder such as Set12, every image at its own size.

The held-out split of a patch-trained model only shows patches; the numbers papers report are
per-image PSNR / SSIM on whole test images, averaged over the set. This module computes those
for denoising at fixed noise levels (next to the noisy input and a tuned classical filter) and
for super-resolution (next to bicubic and bilinear interpolation). The noise is drawn from a
seeded generator, so every run and every model is scored on the very same noisy images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from components.baselines import classical_denoise, tuned_classical_denoise, upsample
from components.corruption import downsample, gaussian_noise
from components.data import IMAGE_SUFFIXES, DatasetError
from components.evaluation import SSIM_RADIUS, image_quality
from components.models import Autoencoder

# The classical filter is tuned on centre crops of this side, so images of any size batch together.
TUNE_CROP = 128


def load_images(folder: Path, channels: int = 1) -> list[torch.Tensor]:
    """Every image in `folder` (sorted by name) as a (1, C, H, W) float tensor in [0, 1]."""
    folder = Path(folder).expanduser()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    images = []
    smallest = 2 * SSIM_RADIUS + 1
    for path in files:
        with Image.open(path) as img:
            if min(img.size) < smallest:
                raise DatasetError(
                    f"{path} is {img.size[0]}×{img.size[1]} pixels; photos are scored whole and SSIM needs "
                    f"at least {smallest}×{smallest}: remove it from {folder}"
                )
            array = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255
        tensor = torch.from_numpy(array.copy())
        images.append(tensor[None, None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)[None])
    return images


def _mean_quality(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean of per-image PSNR / SSIM; `image_quality` wants equal sizes, so each image is scored alone."""
    scores = [image_quality(output, target) for output, target in pairs]
    return {key: float(np.mean([s[key] for s in scores])) for key in ("psnr", "ssim")}


@torch.no_grad()
def _run(model: Autoencoder, image: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(image).clamp(0.0, 1.0)


def _centre_crops(images: list[torch.Tensor], side: int) -> torch.Tensor:
    side = min(side, *(min(img.shape[-2:]) for img in images))
    crops = []
    for img in images:
        top, left = (img.shape[-2] - side) // 2, (img.shape[-1] - side) // 2
        crops.append(img[..., top : top + side, left : left + side])
    return torch.cat(crops)


def evaluate_denoising(
    model: Autoencoder,
    folder: Path,
    sigmas: Sequence[float] = (15, 25, 50),
    seed: int = 0,
    tune_folder: Path | None = None,
    tune_images: int = 4,
    clip: bool = False,
) -> list[dict[str, float | str]]:
    """One row per σ (0–255 scale): mean PSNR / SSIM of the noisy input, a tuned filter and the model.

    The noise is zero-mean Gaussian, unclipped by default as in the BM3D / DnCNN benchmarks, drawn
    from one generator seeded by `seed`. The classical filter (median or Gaussian, components.baselines)
    is tuned per σ on centre crops of the first `tune_images` images of `tune_folder` (e.g. training
    photographs), or, without one, on the test images under a separate noise draw: never on the
    noise it is scored on. The noise of each σ comes from its own generator seeded by (seed, σ).
    """
    images = load_images(folder)
    tuning = load_images(tune_folder)[:tune_images] if tune_folder is not None else images
    tune_clean = _centre_crops(tuning, TUNE_CROP)
    rows: list[dict[str, float | str]] = []
    for sigma in sigmas:
        std = float(sigma) / 255
        # One stream per (seed, σ): a row's noise does not depend on which other σ are evaluated.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + round(float(sigma) * 1000))
        tune_generator = torch.Generator().manual_seed(generator.initial_seed() + 500_000)
        tune_noisy = gaussian_noise(tune_clean, 0.0, std, clip, tune_generator)
        _, chosen = tuned_classical_denoise(tune_noisy, tune_clean, tune_noisy[:1])
        method, strength = str(chosen["method"]), float(chosen["strength"])
        noisy = [gaussian_noise(img, 0.0, std, clip, generator) for img in images]
        filtered = [classical_denoise(x, method, strength) for x in noisy]  # type: ignore[arg-type]
        denoised = [_run(model, x) for x in noisy]
        row: dict[str, float | str] = {"sigma": float(sigma), "images": float(len(images))}
        for name, outputs in (("noisy", noisy), ("classical", filtered), ("model", denoised)):
            quality = _mean_quality(list(zip(outputs, images, strict=True)))
            row[f"{name}_psnr"], row[f"{name}_ssim"] = quality["psnr"], quality["ssim"]
        row["classical_filter"] = f"{method} {strength:g}"
        rows.append(row)
    return rows


def evaluate_superres(
    model: Autoencoder | None, folder: Path, factor: int, mode: str = "bicubic"
) -> dict[str, float]:
    """Mean PSNR / SSIM of bicubic, bilinear and the model (if given) upscaling by `factor`.

    Each image is first cropped (top-left) to a multiple of `factor`, then shrunk with the same
    antialiased `mode` the training corruption uses (components.corruption.downsample).
    """
    images = load_images(folder)
    result: dict[str, float] = {"factor": float(factor), "images": float(len(images))}
    clean = [img[..., : img.shape[-2] // factor * factor, : img.shape[-1] // factor * factor]
             for img in images]  # fmt: skip
    low = [downsample(img, factor, mode) for img in clean]
    sizes = [(img.shape[-2], img.shape[-1]) for img in clean]
    outputs: dict[str, list[torch.Tensor]] = {
        interp: [upsample(x, size, interp) for x, size in zip(low, sizes, strict=True)]
        for interp in ("bicubic", "bilinear")
    }
    if model is not None:
        outputs["model"] = [_run(model, x) for x in low]
    for name, outs in outputs.items():
        quality = _mean_quality(list(zip(outs, clean, strict=True)))
        result[f"{name}_psnr"], result[f"{name}_ssim"] = quality["psnr"], quality["ssim"]
    return result
