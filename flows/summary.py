"""The human-readable summary of a pipeline run, shown as a Prefect artifact and by the CLI."""

from __future__ import annotations

from typing import Any

from components.config import RunConfig

_METRIC_ROWS = [("MSE", "mse", "{:.5f}"), ("PSNR (dB)", "psnr", "{:.2f}"), ("SSIM", "ssim", "{:.4f}")]


def summary_markdown(cfg: RunConfig, result: dict[str, Any]) -> str:
    metrics = result["metrics"]
    baseline = "bicubic upsampling" if cfg.corruption.kind == "downsample" else "corrupted input"
    lines = [
        f"# aeflow run `{cfg.name}`",
        "",
        f"Data **{cfg.data.name}**, corruption **{cfg.corruption.kind}**, model **{cfg.model.kind}** "
        f"{cfg.model.channels}, {cfg.train.epochs} epochs in {result['train_seconds']:.1f} s.",
        "",
        f"| test metric | model | baseline ({baseline}) |",
        "|---|---|---|",
    ]
    for label, key, fmt in _METRIC_ROWS:
        lines.append(
            f"| {label} | {fmt.format(metrics[f'test_{key}'])} | {fmt.format(metrics[f'baseline_{key}'])} |"
        )
    versions = ", ".join(f"{role} v{version}" for role, version in result["registered_versions"].items())
    lines += [
        "",
        f"- ONNX graphs and manifest: `{result['export_dir']}`",
        f"- MLflow run `{result['run_id']}` at `{result['tracking_uri']}`; registered: {versions}",
        f"- Browse runs: `{result['ui_command']}`",
    ]
    return "\n".join(lines)
