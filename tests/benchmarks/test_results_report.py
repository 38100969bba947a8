"""RESULTS.md is rendered from measured rows: the targets column must follow the numbers."""

from __future__ import annotations

from typing import Any

from benchmarks.results_report import render, targets


def _row(name: str, table: str, kind: str = "ae", **metrics: float) -> dict[str, Any]:
    return {
        "row": name, "table": table, "note": "", "preset": name, "overrides": [], "kind": kind,
        "architecture": "conv", "latent": 2, "epochs": 1, "train_seconds": 1.0, "corruption": {},
        "metrics": metrics, "disc_loss_by_epoch": [], "mlflow_run_id": "x",
    }  # fmt: skip


def _verdicts(stored: dict[str, Any]) -> dict[str, bool | None]:
    return {label: met for label, met, _ in targets(stored)}


def test_pca_targets_follow_the_ratio() -> None:
    stored = {
        "rows": [
            _row("ae-2", "ae", mse_ratio_ae_over_pca=0.8),
            _row("ae-16", "ae", mse_ratio_ae_over_pca=1.2, knn_accuracy_codes=0.9, knn_accuracy_pca=0.95),
        ]
    }
    verdicts = _verdicts(stored)
    assert verdicts["ae latent 2: test MSE below PCA-2"] is True
    assert verdicts["ae latent 16: test MSE below PCA-16"] is False
    assert verdicts["ae latent 32: test MSE below PCA-32"] is None  # not run
    assert verdicts["ae-16: k-NN on codes ≥ PCA-16"] is False


def test_denoise_needs_both_the_floor_and_the_filter() -> None:
    stored = {"rows": [_row("denoise-0.3", "denoise", test_psnr=18.0, classical_psnr=18.5)]}
    assert _verdicts(stored)["denoise-0.3: ≥ 17 dB and above the classical filter"] is False
    stored["rows"][0]["metrics"]["classical_psnr"] = 12.0
    assert _verdicts(stored)["denoise-0.3: ≥ 17 dB and above the classical filter"] is True


def test_aae_discriminator_target_and_rendering() -> None:
    aae = _row("aae-2", "generative", kind="aae", test_mse=0.05)
    aae["disc_loss_by_epoch"] = [1.386, 1.3861]
    stored = {"environment": {"date": "today"}, "rows": [aae]}
    assert _verdicts(stored)["aae: discriminator loss moves away from 2·ln 2 = 1.386"] is False
    aae["disc_loss_by_epoch"] = [1.38, 1.1]
    assert _verdicts(stored)["aae: discriminator loss moves away from 2·ln 2 = 1.386"] is True
    text = render(stored)
    assert "## Adversarial autoencoder" in text and "| aae-2 |" in text
    assert "| aae: discriminator loss moves away from 2·ln 2 = 1.386 | yes |" in text
