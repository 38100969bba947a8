"""Every model kind on the bundled digits: shapes, a falling loss, ONNX parity, seeds, kind-specific parts.

Each kind is trained once (a few epochs, tiny widths) and shared by every test of this module;
its export is made once too. All outputs go under pytest's temporary folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from components.comparisons import kind_comparisons
from components.corruption import corrupt_fixed, model_input_shape
from components.data import ImageSplits
from components.models import build_model
from components.models.vae import VariationalAutoencoder
from components.pictures import kind_pictures
from components.presets import ConfigError, load_config
from tests.components.kinds_support import (
    ATOL,
    GENERATIVE,
    KINDS,
    VARIATIONAL,
    KindRun,
    kind_config,
    no_autocast,
    one_thread,  # noqa: F401  (autouse: one thread per module)
)


# --- (a) shapes and ranges ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_code_and_output_shapes(runs: dict[str, KindRun], kind: str) -> None:
    run = runs[kind]
    model, image_shape = run.model, run.splits.image_shape
    x, y = run.inputs(5)
    assert tuple(x.shape[1:]) == model_input_shape(run.cfg.corruption, image_shape)
    with torch.no_grad():
        code = model.encode(x, y)
        out = model(x, y)
    assert tuple(code.shape) == (5, *model.latent_shape)
    assert tuple(out.shape) == (5, *image_shape)
    assert out.min() >= 0.0 and out.max() <= 1.0
    if kind in VARIATIONAL:
        assert isinstance(model, VariationalAutoencoder)
        with torch.no_grad():
            heads = model.encoder(x, y)
        assert isinstance(heads, tuple) and len(heads) == 2
        assert all(tuple(h.shape) == (5, model.latent_shape[0]) for h in heads)
        torch.testing.assert_close(heads[0], code)


def test_kind_specific_code_shapes(runs: dict[str, KindRun]) -> None:
    assert runs["ae"].model.latent_shape == (8, 4, 4)
    assert runs["sparse-ae"].model.latent_shape == (8,)
    assert runs["superres-x2"].model.latent_shape == (8, 2, 2)  # 8×8 input, two halvings
    assert runs["superres-x4"].model.latent_shape == (8, 1, 1)
    for kind in GENERATIVE:
        assert runs[kind].model.latent_shape == (2,)
        assert runs[kind].model.generative
    assert runs["cvae"].model.conditional
    assert not any(runs[k].model.generative for k in ("ae", "sparse-ae", "denoise", "superres-x2"))


# --- (b) the loss falls ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_training_loss_falls_on_a_fixed_real_batch(
    kinds_root: Path, digits_splits: ImageSplits, kind: str
) -> None:
    cfg = kind_config(kinds_root, kind)
    torch.manual_seed(0)
    image_shape = digits_splits.image_shape
    model = build_model(cfg.model, model_input_shape(cfg.corruption, image_shape), image_shape)
    optimizers = model.make_optimizers(3e-3)
    clean = digits_splits.train[:64]
    labels = digits_splits.train_labels[:64] if model.conditional else None
    noisy = corrupt_fixed(clean, cfg.corruption)
    model.train()
    losses = [
        float(model.training_step(noisy, clean, labels, optimizers, no_autocast)["loss"]) for _ in range(60)
    ]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert np.isfinite(losses).all()
    assert last < 0.85 * first, f"{kind}: loss went from {first:.4f} to {last:.4f}: {losses}"


@pytest.mark.parametrize("kind", KINDS)
def test_fit_history_falls(runs: dict[str, KindRun], kind: str) -> None:
    history = runs[kind].result.history
    assert len(history) == 3
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].val_loss < history[0].val_loss


def test_loss_terms_reported_per_kind(runs: dict[str, KindRun]) -> None:
    terms = {kind: set(runs[kind].result.history[0].terms) for kind in KINDS}
    assert terms["ae"] == {"recon"}
    assert terms["sparse-ae"] == {"recon", "l1"}
    assert terms["vae-fc"] == terms["cvae"] == {"recon", "kl"}
    assert terms["aae"] == {"recon", "disc_loss", "gen_loss"}


# --- (c) export parity -------------------------------------------------------------------------
def _session(folder: Path, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])


def _feeds(session: ort.InferenceSession, first: torch.Tensor, labels: torch.Tensor | None) -> dict:
    names = [i.name for i in session.get_inputs()]
    feeds = {names[0]: first.numpy().astype(np.float32)}
    if labels is not None:
        feeds["labels"] = labels.numpy().astype(np.int64)
    assert set(feeds) == set(names)
    return feeds


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_graphs_match_torch_at_batches_1_3_8(runs: dict[str, KindRun], kind: str) -> None:
    run = runs[kind]
    model, folder = run.model, run.export.folder
    encoder, decoder, whole = (_session(folder, f) for f in ("encoder.onnx", "decoder.onnx", "model.onnx"))
    label_inputs = ["labels"] if model.conditional else []
    assert [i.name for i in encoder.get_inputs()] == ["images", *label_inputs]
    assert [i.name for i in decoder.get_inputs()] == ["code", *label_inputs]
    assert [i.name for i in whole.get_inputs()] == ["images", *label_inputs]
    expected_outputs = ["mean", "log_var"] if model.variational else ["code"]
    assert [o.name for o in encoder.get_outputs()] == expected_outputs
    for offset, n in enumerate((1, 3, 8)):
        x, y = run.inputs(n, offset=10 * offset)
        with torch.no_grad():
            torch_heads = (
                model.posterior(x, y) if isinstance(model, VariationalAutoencoder) else (model.encode(x, y),)
            )
            code = model.encode(x, y)
            torch_images = model.decode(code, y)
            torch_whole = model(x, y)
        onnx_heads = encoder.run(None, _feeds(encoder, x, y))
        assert len(onnx_heads) == len(torch_heads)
        for got, want in zip(onnx_heads, torch_heads, strict=True):
            assert got.shape == (n, *model.latent_shape)
            np.testing.assert_allclose(got, want.numpy(), atol=ATOL, rtol=0)
        (onnx_images,) = decoder.run(None, _feeds(decoder, code, y))
        (onnx_whole,) = whole.run(None, _feeds(whole, x, y))
        assert onnx_images.shape == onnx_whole.shape == (n, *run.splits.image_shape)
        np.testing.assert_allclose(onnx_images, torch_images.numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(onnx_whole, torch_whole.numpy(), atol=ATOL, rtol=0)


def test_cvae_graphs_take_int64_labels_that_the_decoder_uses(runs: dict[str, KindRun]) -> None:
    run = runs["cvae"]
    folder = run.export.folder
    for name in ("encoder.onnx", "decoder.onnx", "model.onnx"):
        labels_input = {i.name: i for i in _session(folder, name).get_inputs()}["labels"]
        assert labels_input.type == "tensor(int64)"
    decoder = _session(folder, "decoder.onnx")
    codes = torch.randn((10, 2), generator=torch.Generator().manual_seed(0))
    digits = torch.arange(10)
    (as_is,) = decoder.run(None, _feeds(decoder, codes, digits))
    (shifted,) = decoder.run(None, _feeds(decoder, codes, (digits + 1) % 10))
    per_image = np.abs(as_is - shifted).reshape(10, -1).max(axis=1)
    assert (per_image > 1e-2).all(), f"the labels barely change the decoded images: {per_image}"
    with torch.no_grad():
        np.testing.assert_allclose(shifted, run.model.decode(codes, (digits + 1) % 10).numpy(), atol=ATOL)


# --- (g) comparisons and pictures --------------------------------------------------------------
PCA = {"pca_components", "pca_mse", "pca_psnr", "pca_ssim", "mse_ratio_ae_over_pca"}
KNN = {"knn_accuracy_codes", "knn_accuracy_pixels", "knn_accuracy_pca"}
CLASSICAL = {"classical_psnr", "classical_ssim", "classical_mse", "psnr_gain_over_classical_db"}
UPSAMPLING = {f"{mode}_{score}" for mode in ("bicubic", "bilinear") for score in ("psnr", "ssim", "mse")}
VAE = {f"vae_{key}" for key in ("elbo", "recon", "kl", "active_units", "iwae_nll", "iwae_k")} | {
    "vae_kl_dim_0",
    "vae_kl_dim_1",
}
EXPECTED_COMPARISONS = {
    "ae": PCA | KNN,
    "sparse-ae": PCA | KNN,
    "denoise": PCA | KNN | CLASSICAL,
    "superres-x2": UPSAMPLING,
    "superres-x4": UPSAMPLING,
    "vae-fc": PCA | KNN | VAE,
    "vae-conv": PCA | KNN | VAE,
    "cvae": PCA | KNN | VAE,
    "aae": PCA | KNN,
}


@pytest.mark.parametrize("kind", KINDS)
def test_kind_comparisons_report_what_applies(runs: dict[str, KindRun], kind: str) -> None:
    run = runs[kind]
    evaluation = run.evaluation
    out = kind_comparisons(run.model, run.splits, run.cfg, evaluation.corrupted, evaluation.metrics)
    chosen_filter = {k for k in out if k.startswith("classical_is_")}
    assert len(chosen_filter) == (1 if kind == "denoise" else 0)
    assert set(out) - chosen_filter == EXPECTED_COMPARISONS[kind]
    assert all(np.isfinite(v) for v in out.values())
    if "pca_components" in out:
        assert out["pca_components"] == float(np.prod(run.model.latent_shape))
    for key in KNN & set(out):
        assert 0.0 <= out[key] <= 1.0
    if kind in VARIATIONAL:
        assert out["vae_iwae_k"] == run.cfg.eval.iwae_k
        assert out["vae_elbo"] == pytest.approx(-(out["vae_recon"] + out["vae_kl"]))
        assert out["vae_kl"] == pytest.approx(out["vae_kl_dim_0"] + out["vae_kl_dim_1"], rel=1e-5)
        assert 0 <= out["vae_active_units"] <= 2
        assert out["vae_iwae_nll"] <= -out["vae_elbo"]


def test_comparisons_without_baselines_keep_only_the_vae_scores(runs: dict[str, KindRun]) -> None:
    for kind in ("ae", "vae-fc"):
        run = runs[kind]
        cfg = run.cfg.model_copy(update={"eval": run.cfg.eval.model_copy(update={"baselines": False})})
        out = kind_comparisons(run.model, run.splits, cfg, run.evaluation.corrupted, run.evaluation.metrics)
        assert set(out) == (VAE if kind == "vae-fc" else set())


BASIC_PICTURES = {"reconstructions.png", "interpolation.png"}
GENERATIVE_PICTURES = BASIC_PICTURES | {
    "latent_scatter.png",
    "latent_traversal.png",
    "samples.png",
    "perturbed.png",
}


@pytest.mark.parametrize("kind", KINDS)
def test_kind_pictures_writes_the_expected_pngs(runs: dict[str, KindRun], kind: str, tmp_path: Path) -> None:
    run = runs[kind]
    paths = kind_pictures(run.model, run.splits, run.cfg, run.evaluation, tmp_path)
    expected = GENERATIVE_PICTURES if kind in GENERATIVE else BASIC_PICTURES
    assert {p.name for p in paths} == expected
    assert len(paths) == len(expected)
    assert {p.name for p in tmp_path.iterdir()} == expected
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- (h) config validation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.kind=vae"], "model.latent_dim"),
        (["model.kind=cvae", "model.architecture=fc"], "model.latent_dim"),
        (["model.kind=superres", "corruption.kind=gaussian"], "corruption.kind"),
        (["model.kind=superres"], "corruption.kind"),
        (["model.kind=denoise", "corruption.kind=none"], "corruption.kind"),
        (["model.kind=vae", "model.architecture=fcn", "model.latent_dim=2"], "model.architecture"),
        (["model.kind=aae", "model.architecture=fcn", "model.latent_dim=2"], "model.architecture"),
    ],
)
def test_inconsistent_kind_configs_are_refused_naming_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert key in str(err.value)
