"""Render benchmarks/results.json as RESULTS.md: one table per question, then the targets."""

from __future__ import annotations

import math
from typing import Any

LN4 = 2 * math.log(2)


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_f(v) for v in row) + " |" for row in body),
        "",
    ]


def _rows(stored: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return [r for r in stored.get("rows", []) if r["table"] == table]


def _get(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else row["metrics"].get(key)


def targets(stored: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met?, evidence) for every measurable target of the issue."""
    by = {r["row"]: r for r in stored.get("rows", [])}
    out: list[tuple[str, bool | None, str]] = []
    for n in (2, 16, 32, 64, 128):
        r = by.get(f"ae-{n}")
        ratio = _get(r, "mse_ratio_ae_over_pca")
        label = f"ae latent {n}: test MSE below PCA-{n}" + (" (stretch)" if n == 128 else "")
        evidence = f"ratio {_f(ratio)}" if ratio is not None else "not run"
        out.append((label, None if ratio is None else ratio < 1, evidence))
    r = by.get("ae-16")
    codes, pca = _get(r, "knn_accuracy_codes"), _get(r, "knn_accuracy_pca")
    out.append(("ae-16: k-NN on codes ≥ PCA-16", None if codes is None or pca is None else codes >= pca,
                f"{_f(codes)} vs {_f(pca)}"))  # fmt: skip
    for row, need in (("denoise-0.3", 17.0), ("denoise-0.5", 15.0)):
        r = by.get(row)
        psnr, classical = _get(r, "test_psnr"), _get(r, "classical_psnr")
        met = None if psnr is None or classical is None else psnr >= need and psnr > classical
        out.append((f"{row}: ≥ {need:g} dB and above the classical filter", met,
                    f"{_f(psnr)} dB vs filter {_f(classical)} dB"))  # fmt: skip
    for row, need in (("superres-x2", 2.0), ("superres-x4", 1.0)):
        r = by.get(row)
        psnr, bicubic = _get(r, "test_psnr"), _get(r, "bicubic_psnr")
        gain = None if psnr is None or bicubic is None else psnr - bicubic
        out.append((f"{row}: ≥ {need:g} dB above bicubic", None if gain is None else gain >= need,
                    f"+{_f(gain)} dB"))  # fmt: skip
    for n in (2, 16):
        fc, conv = by.get(f"vae-fc-{n}"), by.get(f"vae-conv-{n}")
        if fc and conv:
            better = _get(conv, "vae_elbo") > _get(fc, "vae_elbo") and _get(conv, "vae_iwae_nll") < _get(  # type: ignore[operator]
                fc, "vae_iwae_nll"
            )
            out.append((f"latent {n}: conv VAE beats FC on ELBO and IWAE-NLL", better,
                        f"ELBO {_f(_get(conv, 'vae_elbo'))} vs {_f(_get(fc, 'vae_elbo'))}; NLL "
                        f"{_f(_get(conv, 'vae_iwae_nll'))} vs {_f(_get(fc, 'vae_iwae_nll'))}"))  # fmt: skip
    aae = by.get("aae-2")
    if aae and aae["disc_loss_by_epoch"]:
        losses = aae["disc_loss_by_epoch"]
        moved = max(abs(v - LN4) for v in losses)
        out.append(("aae: discriminator loss moves away from 2·ln 2 = 1.386", moved > 0.05,
                    f"first {_f(losses[0])}, last {_f(losses[-1])}, max |Δ| {_f(moved)}"))  # fmt: skip
    photo = by.get("photo-denoise")
    if photo and "photo_s25_model_psnr" in photo["metrics"]:
        gain = photo["metrics"]["photo_s25_model_psnr"] - photo["metrics"]["photo_s25_noisy_psnr"]
        out.append(("photo-denoise: Set12 σ = 25 at least 8 dB above the noisy input", gain >= 8,
                    f"+{_f(gain)} dB in {_f(photo['train_seconds'])} s of training"))  # fmt: skip
        ours = photo["metrics"]["photo_s25_model_psnr"]
        out.append(("photo-denoise: distance from BM3D / DnCNN at σ = 25 (BSD68, not the same images)", None,
                    f"{_f(ours)} dB on Set12: {_f(ours - 28.57)} dB vs BM3D 28.57, "
                    f"{_f(ours - 29.23)} dB vs DnCNN 29.23"))  # fmt: skip
    return out


def _other_machines(stored: dict[str, Any]) -> str:
    """Rows measured in another setting (fewer threads, say) than the header's, named."""
    newest = stored.get("environment", {}).get("machine")
    others: dict[str, list[str]] = {}
    for row in stored.get("rows", []):
        machine = row.get("environment", {}).get("machine")
        if machine and machine != newest:
            others.setdefault(machine, []).append(row["row"])
    return "".join(f" Rows {', '.join(rows)}: {machine}." for machine, rows in others.items())


def render(stored: dict[str, Any]) -> str:
    env = stored.get("environment", {})
    lines = [
        "# RESULTS",
        "",
        "Generated by `make results` (`python -m benchmarks.results`) from `benchmarks/results.json`; "
        "do not edit by hand. Every row is one run of the Prefect flow, tracked in MLflow "
        "(experiment `aeflow-results`).",
        "",
        f"Measured {env.get('date', '?')} on {env.get('machine', '?')}, Python {env.get('python', '?')}, "
        f"torch {env.get('torch', '?')}.{_other_machines(stored)} Data: the MNIST subset (7,000 train → "
        "6,300 train + 700 "
        "validation; 1,000 test). MSE is per pixel, PSNR/SSIM are means over test images "
        "(scikit-image, data range 1). Seconds are training time only.",
        "",
        "## Reconstruction: autoencoder vs PCA at the same code size",
        "",
    ]
    ae = _rows(stored, "ae")
    lines += _table(
        ["row", "latent", "epochs", "train s", "test MSE", "PCA MSE", "AE/PCA", "k-NN codes", "k-NN PCA",
         "k-NN pixels", "note"],
        [[r["row"], r["latent"], r["epochs"], r["train_seconds"], _get(r, "test_mse"), _get(r, "pca_mse"),
          _get(r, "mse_ratio_ae_over_pca"), _get(r, "knn_accuracy_codes"), _get(r, "knn_accuracy_pca"),
          _get(r, "knn_accuracy_pixels"), r["note"]] for r in ae],
    )  # fmt: skip
    lines += ["## Denoising", ""]
    lines += _table(
        ["row", "epochs", "train s", "PSNR", "SSIM", "noisy PSNR", "filter PSNR", "gain over filter", "note"],
        [[r["row"], r["epochs"], r["train_seconds"], _get(r, "test_psnr"), _get(r, "test_ssim"),
          _get(r, "baseline_psnr"), _get(r, "classical_psnr"), _get(r, "psnr_gain_over_classical_db"),
          r["note"]]
         for r in _rows(stored, "denoise")],
    )  # fmt: skip
    lines += ["## Super-resolution (area-downsampled input)", ""]
    lines += _table(
        ["row", "epochs", "train s", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "bilinear PSNR", "note"],
        [[r["row"], r["epochs"], r["train_seconds"], _get(r, "test_psnr"), _get(r, "test_ssim"),
          _get(r, "bicubic_psnr"), _get(r, "bicubic_ssim"), _get(r, "bilinear_psnr"), r["note"]]
         for r in _rows(stored, "superres")],
    )  # fmt: skip
    lines += [
        "## Variational autoencoders (binarized test images, nats per image)",
        "",
    ]
    vae_rows = _rows(stored, "vae") + [r for r in _rows(stored, "generative") if r["kind"] == "cvae"]
    lines += _table(
        ["row", "arch", "latent", "epochs", "train s", "ELBO", "recon", "KL", "active units", "IWAE NLL", "k",
         "test MSE", "note"],
        [[r["row"], r["architecture"], r["latent"], r["epochs"], r["train_seconds"], _get(r, "vae_elbo"),
          _get(r, "vae_recon"), _get(r, "vae_kl"), _get(r, "vae_active_units"), _get(r, "vae_iwae_nll"),
          _get(r, "vae_iwae_k"), _get(r, "test_mse"), r["note"]] for r in vae_rows],
    )  # fmt: skip
    aae = [r for r in _rows(stored, "generative") if r["kind"] == "aae"]
    if aae:
        lines += ["## Adversarial autoencoder", ""]
        lines += _table(
            ["row", "latent", "epochs", "train s", "test MSE", "disc loss epoch 1", "disc loss last",
             "2·ln 2"],
            [[r["row"], r["latent"], r["epochs"], r["train_seconds"], _get(r, "test_mse"),
              r["disc_loss_by_epoch"][0] if r["disc_loss_by_epoch"] else None,
              r["disc_loss_by_epoch"][-1] if r["disc_loss_by_epoch"] else None, LN4] for r in aae],
        )  # fmt: skip
    photo = _rows(stored, "photo")
    if photo:
        lines += [
            "## Photographs: whole Set12 images (PSNR dB / SSIM)",
            "",
            "Trained on random patches of train400; the denoiser at σ = 25 only (non-blind). For scale, on "
            "BSD68 at σ = 25 BM3D reaches 28.57 dB and DnCNN 29.23 dB (different images).",
            "",
        ]
        body = []
        for r in photo:
            m = r["metrics"]
            for sigma in (15, 25, 50):
                if f"photo_s{sigma}_model_psnr" in m:
                    cells = [f"{m[f'photo_s{sigma}_{n}_psnr']:.2f} / {m[f'photo_s{sigma}_{n}_ssim']:.3f}"
                             for n in ("noisy", "classical", "model")]  # fmt: skip
                    body.append([r["row"], f"σ = {sigma}", r["epochs"], r["train_seconds"], *cells])
            if "photo_model_psnr" in m:
                cells = [f"{m[f'photo_{n}_psnr']:.2f} / {m[f'photo_{n}_ssim']:.3f}"
                         for n in ("bicubic", "bilinear", "model")]  # fmt: skip
                body.append(
                    [r["row"], f"×{r['corruption']['factor']}", r["epochs"], r["train_seconds"], *cells]
                )
        lines += _table(
            ["row", "setting", "epochs", "train s", "input or bicubic", "filter or bilinear", "model"], body
        )
    lines += ["## Targets", ""]
    lines += _table(
        ["target", "met", "measured"],
        [[label, "–" if met is None else ("yes" if met else "**no**"), evidence]
         for label, met, evidence in targets(stored)],
    )  # fmt: skip
    return "\n".join(lines)
