"""The human-readable summary of a pipeline run, shown as a Prefect artifact and by the CLI."""

from __future__ import annotations

from typing import Any

from components.config import RunConfig

_CORE = [("MSE", "mse", "{:.5f}"), ("PSNR (dB)", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}")]
# Comparison metrics worth a line of their own, in reading order, with a plain-words label.
_COMPARISONS = [
    ("pca_mse", "PCA at the same code size: MSE"),
    ("mse_ratio_ae_over_pca", "MSE ratio autoencoder / PCA (below 1: the autoencoder wins)"),
    ("knn_accuracy_codes", "k-NN accuracy on the codes"),
    ("knn_accuracy_pca", "k-NN accuracy on PCA codes of the same size"),
    ("knn_accuracy_pixels", "k-NN accuracy on raw pixels"),
    ("classical_psnr", "classical filter (tuned on validation): PSNR dB"),
    ("psnr_gain_over_classical_db", "PSNR gain over the classical filter, dB"),
    ("bicubic_psnr", "bicubic upsampling: PSNR dB"),
    ("bilinear_psnr", "bilinear upsampling: PSNR dB"),
    ("test_loss", "test loss (the training objective)"),
    ("vae_elbo", "ELBO (nats, binarized test images)"),
    ("vae_recon", "ELBO reconstruction term (nats)"),
    ("vae_kl", "ELBO KL term (nats)"),
    ("vae_active_units", "active latent units"),
    ("vae_iwae_nll", "IWAE NLL bound (nats)"),
    ("vae_iwae_k", "IWAE importance samples k"),
]


def comparison_lines(metrics: dict[str, float]) -> list[tuple[str, str]]:
    return [(label, f"{metrics[key]:.4g}") for key, label in _COMPARISONS if key in metrics]


def summary_markdown(cfg: RunConfig, result: dict[str, Any]) -> str:
    metrics = result["metrics"]
    baseline = "bicubic upsampling" if cfg.corruption.kind == "downsample" else "corrupted input"
    lines = [
        f"# aeflow run `{cfg.name}`",
        "",
        f"Data **{cfg.data.name}**, corruption **{cfg.corruption.kind}**, model **{cfg.model.kind}** "
        f"({cfg.model.architecture}, channels {cfg.model.channels}, "
        f"latent {cfg.model.latent_dim or 'spatial'}), "
        f"{cfg.train.epochs} epochs in {result['train_seconds']:.1f} s.",
        "",
        f"| test metric | model | baseline ({baseline}) |",
        "|---|---|---|",
    ]
    for label, key, fmt in _CORE:
        lines.append(
            f"| {label} | {fmt.format(metrics[f'test_{key}'])} | {fmt.format(metrics[f'baseline_{key}'])} |"
        )
    extra = comparison_lines(metrics)
    if extra:
        lines += [
            "",
            "| comparison | value |",
            "|---|---|",
            *(f"| {label} | {value} |" for label, value in extra),
        ]
    versions = ", ".join(f"{role} v{version}" for role, version in result["registered_versions"].items())
    champion = result.get("champion")
    if champion:
        verdict = "**promoted** to" if champion["promoted"] else "did not take"
        incumbent = champion["incumbent_score"]
        lines += [
            "",
            f"Registry: this run {verdict} the champion alias. {champion['reason']}.",
            "",
            f"| {champion['metric']} (same evaluation set) | score |",
            "|---|---|",
            f"| this run | {champion['challenger_score']:.4f} |",
            f"| champion before this run | {'–' if incumbent is None else f'{incumbent:.4f}'} |",
        ]
    lines += [
        "",
        f"- ONNX graphs and manifest: `{result['export_dir']}`",
        f"- MLflow run `{result['run_id']}` at `{result['tracking_uri']}`; registered: {versions}; "
        "pictures under the run's `figures/` artifacts",
        f"- Browse runs: `{result['ui_command']}`",
    ]
    return "\n".join(lines)
