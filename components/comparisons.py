"""Kind-specific scores that put a trained autoencoder next to the obvious alternatives.

- PCA at the same code size (the optimal *linear* autoencoder): reconstruction MSE and the
  ratio AE / PCA, where the lesson's claim "autoencoders beat PCA" either holds or does not.
- k-NN accuracy of the codes against raw pixels and PCA codes of the same size.
- Denoising: the gain over a classical filter tuned on the validation split.
- Super-resolution: bicubic and bilinear upsampling of the same low-resolution input.
- VAEs: ELBO and its parts, KL per dimension, active units, and the IWAE bound on the NLL.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from components.baselines import knn_accuracy, pca_reconstruction, tuned_classical_denoise, upsample
from components.config import NOISE_KINDS, RunConfig
from components.corruption import corrupt_fixed
from components.data import DatasetError, ImageSplits
from components.evaluation import encode_all, image_quality
from components.models import Autoencoder
from components.models.vae import VariationalAutoencoder
from components.photo_eval import evaluate_denoising, evaluate_superres
from components.vae_metrics import vae_report

KNN_REFERENCE_LIMIT = 10_000  # k-NN reference codes; enough for MNIST-sized splits


def _has_labels(splits: ImageSplits) -> bool:
    return (
        bool(len(splits.test_labels)) and int(min(splits.train_labels.min(), splits.test_labels.min())) >= 0
    )


def pca_comparison(
    model: Autoencoder, splits: ImageSplits, cfg: RunConfig, corrupted: torch.Tensor, model_mse: float
) -> dict[str, float]:
    """PCA with as many components as the code has values, applied to the same (corrupted) inputs."""
    if cfg.corruption.kind == "downsample":
        return {}  # PCA maps images to images of the same size; no fair super-resolution analogue
    size = math.prod(model.latent_shape)
    if size > min(len(splits.train), splits.train[0].numel()):
        return {}
    pca = pca_reconstruction(splits.train, corrupted, size, seed=cfg.data.seed)
    scores = image_quality(pca.reconstruction, splits.test)
    return {
        "pca_components": float(size),
        "pca_mse": scores["mse"],
        "pca_psnr": scores["psnr"],
        "pca_ssim": scores["ssim"],
        "mse_ratio_ae_over_pca": model_mse / scores["mse"] if scores["mse"] > 0 else float("inf"),
    }


def knn_comparison(model: Autoencoder, splits: ImageSplits, cfg: RunConfig) -> dict[str, float]:
    """k-NN accuracy on codes of clean images vs raw pixels and PCA codes of the code's size."""
    if not _has_labels(splits) or cfg.corruption.kind == "downsample":
        return {}
    reference = splits.train[:KNN_REFERENCE_LIMIT]
    reference_labels = splits.train_labels[:KNN_REFERENCE_LIMIT]
    k = min(cfg.eval.knn_k, len(reference))
    train_codes = encode_all(model, reference, reference_labels)
    test_codes = encode_all(model, splits.test, splits.test_labels)
    out = {
        "knn_accuracy_codes": knn_accuracy(train_codes, reference_labels, test_codes, splits.test_labels, k),
        "knn_accuracy_pixels": knn_accuracy(reference, reference_labels, splits.test, splits.test_labels, k),
    }
    size = math.prod(model.latent_shape)
    if size <= min(len(reference), reference[0].numel()):
        pca = pca_reconstruction(reference, splits.test, size, seed=cfg.data.seed)
        out["knn_accuracy_pca"] = knn_accuracy(
            pca.train_codes, reference_labels, pca.input_codes, splits.test_labels, k
        )
    return out


def denoising_comparison(
    splits: ImageSplits, cfg: RunConfig, corrupted: torch.Tensor, model_psnr: float
) -> dict[str, float]:
    """A median or Gaussian filter, its strength picked on the validation split, on the test inputs.

    Gaussian noise of known non-zero mean (the lesson's N(0.5, σ)) shifts the brightness, which no
    filter undoes, so that known mean is subtracted first: the filter gets its fairest chance.
    """
    if cfg.corruption.kind not in NOISE_KINDS or not len(splits.val):
        return {}
    shift = cfg.corruption.mean if cfg.corruption.kind == "gaussian" else 0.0
    val_cfg = cfg.corruption.model_copy(update={"eval_seed": cfg.corruption.eval_seed + 1})
    noisy_val = corrupt_fixed(splits.val, val_cfg) - shift
    filtered, choice = tuned_classical_denoise(noisy_val, splits.val, corrupted - shift)
    scores = image_quality(filtered, splits.test)
    return {
        "classical_psnr": scores["psnr"],
        "classical_ssim": scores["ssim"],
        "classical_mse": scores["mse"],
        "psnr_gain_over_classical_db": model_psnr - scores["psnr"],
        f"classical_is_{choice['method']}": float(choice["strength"]),
    }


def superres_comparison(splits: ImageSplits, cfg: RunConfig, corrupted: torch.Tensor) -> dict[str, float]:
    if cfg.corruption.kind != "downsample":
        return {}
    size = (splits.test.shape[-2], splits.test.shape[-1])
    out: dict[str, float] = {}
    for mode in ("bicubic", "bilinear"):
        scores = image_quality(upsample(corrupted, size, mode), splits.test)
        out |= {f"{mode}_psnr": scores["psnr"], f"{mode}_ssim": scores["ssim"], f"{mode}_mse": scores["mse"]}
    return out


def vae_comparison(model: Autoencoder, splits: ImageSplits, cfg: RunConfig) -> dict[str, float]:
    """The likelihood scores, on the binarized clean test images (nats per image)."""
    if not isinstance(model, VariationalAutoencoder):
        return {}
    labels = splits.test_labels if model.conditional else None
    report = vae_report(model, splits.test, labels, k=cfg.eval.iwae_k, seed=cfg.train.seed)
    out = {f"vae_{key}": float(value) for key, value in report.items() if not isinstance(value, list)}
    for i, value in enumerate(report["kl_per_dim"]):  # type: ignore[arg-type]
        out[f"vae_kl_dim_{i}"] = float(value)
    return out


def photo_comparison(model: Autoencoder, cfg: RunConfig) -> dict[str, float]:
    """Whole-image scores on `eval.photo_folder` (e.g. Set12), as benchmarks report them."""
    folder = cfg.eval.photo_folder
    if folder is None:
        return {}
    if not Path(folder).is_dir():
        raise DatasetError(f"eval.photo_folder {folder} is not a folder of images; fix or unset it")
    out: dict[str, float] = {}
    if cfg.corruption.kind == "downsample":
        scores = evaluate_superres(model, Path(folder), cfg.corruption.factor, cfg.corruption.mode)
        for name in ("model", "bicubic", "bilinear"):
            out |= {
                f"photo_{name}_psnr": scores[f"{name}_psnr"],
                f"photo_{name}_ssim": scores[f"{name}_ssim"],
            }
        return out
    tune = Path(cfg.data.root) if cfg.data.name == "folder" else None
    rows = evaluate_denoising(
        model, Path(folder), cfg.eval.photo_sigmas, tune_folder=tune, clip=cfg.corruption.clip
    )
    for row in rows:
        sigma = f"{row['sigma']:g}"
        for name in ("noisy", "classical", "model"):
            out[f"photo_s{sigma}_{name}_psnr"] = float(row[f"{name}_psnr"])
            out[f"photo_s{sigma}_{name}_ssim"] = float(row[f"{name}_ssim"])
    return out


def kind_comparisons(
    model: Autoencoder,
    splits: ImageSplits,
    cfg: RunConfig,
    corrupted: torch.Tensor,
    metrics: dict[str, float],
) -> dict[str, float]:
    """Every comparison that applies to this model kind and data, as flat metric names."""
    if not cfg.eval.baselines:
        return vae_comparison(model, splits, cfg) | photo_comparison(model, cfg)
    out = photo_comparison(model, cfg)
    out |= pca_comparison(model, splits, cfg, corrupted, metrics["test_mse"])
    out |= knn_comparison(model, splits, cfg)
    out |= denoising_comparison(splits, cfg, corrupted, metrics["test_psnr"])
    out |= superres_comparison(splits, cfg, corrupted)
    out |= vae_comparison(model, splits, cfg)
    return out
