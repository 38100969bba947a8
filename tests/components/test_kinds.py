"""Every model kind on the bundled digits: shapes, a falling loss, ONNX parity, seeds, kind-specific parts.

Each kind is trained once (a few epochs, tiny widths) and shared by every test of this module;
its export is made once too. All outputs go under pytest's temporary folders.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch.distributions import Normal, kl_divergence

from components.comparisons import kind_comparisons
from components.config import RunConfig
from components.corruption import corrupt_fixed, model_input_shape
from components.data import ImageSplits
from components.evaluation import Evaluation, evaluate
from components.export import ExportResult, export_model
from components.models import Autoencoder, build_model
from components.models.aae import AdversarialAutoencoder
from components.models.vae import VariationalAutoencoder
from components.pictures import kind_pictures
from components.presets import ConfigError, load_config
from components.training import TrainResult, fit
from components.vae_metrics import gaussian_kl

BASE = (
    "data.name=digits",
    "data.image_size=16",
    "data.limit=300",
    "model.channels=[8, 8]",
    "train.epochs=3",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.device=cpu",
    "train.loss=bce",
    "train.num_threads=1",
    "eval.iwae_k=32",
)
FC = ("model.architecture=fc", "model.hidden=[64]", "model.latent_dim=2")
KINDS: dict[str, tuple[str, ...]] = {
    "ae": ("model.kind=ae",),  # the lesson's spatial 8×4×4 code
    "sparse-ae": ("model.kind=ae", "model.latent_dim=8", "model.sparsity=0.01"),
    "denoise": (
        "model.kind=denoise",
        "corruption.kind=gaussian",
        "corruption.mean=0.0",
        "corruption.std=0.2",
    ),
    "superres-x2": (
        "model.kind=superres",
        "corruption.kind=downsample",
        "corruption.factor=2",
        "model.upsample=pixelshuffle",
    ),
    "superres-x4": (
        "model.kind=superres",
        "corruption.kind=downsample",
        "corruption.factor=4",
        "model.upsample=nearest",
    ),
    "vae-fc": ("model.kind=vae", *FC),
    "vae-conv": ("model.kind=vae", "model.latent_dim=2"),
    "cvae": ("model.kind=cvae", *FC),
    "aae": ("model.kind=aae", *FC, "model.disc_hidden=32"),
}
VARIATIONAL = ("vae-fc", "vae-conv", "cvae")
GENERATIVE = (*VARIATIONAL, "aae")
ATOL = 1e-5


def kind_config(root: Path, kind: str, *extra: str) -> RunConfig:
    """The config of one kind with its cache, checkpoints and exports under `root`."""
    return load_config(
        overrides=[
            *BASE,
            *KINDS[kind],
            f"name=kinds-{kind}",
            "train.progress=false",
            f"data.cache_dir={root / 'cache'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"export.dir={root / 'exported'}",
            *extra,
        ]
    )


def no_autocast() -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclass
class KindRun:
    kind: str
    cfg: RunConfig
    splits: ImageSplits
    result: TrainResult
    _evaluation: Evaluation | None = field(default=None, repr=False)
    _export: ExportResult | None = field(default=None, repr=False)

    @property
    def model(self) -> Autoencoder:
        return self.result.model

    def inputs(self, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`n` fixed, corrupted test inputs and their labels (labels only for conditional models)."""
        clean = self.splits.test[offset : offset + n]
        labels = self.splits.test_labels[offset : offset + n] if self.model.conditional else None
        return corrupt_fixed(clean, self.cfg.corruption), labels

    @property
    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            self._evaluation = evaluate(self.model, self.splits, self.cfg)
        return self._evaluation

    @property
    def export(self) -> ExportResult:
        if self._export is None:
            self._export = export_model(self.model, self.cfg, self.splits.image_shape)
        return self._export


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread and one BLAS thread: on two shared cores, OpenBLAS's spinning threads turn a
    300×256 SVD (the PCA baseline) from milliseconds into seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kinds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="module")
def runs(kinds_root: Path, digits_splits: ImageSplits) -> dict[str, KindRun]:
    """Lazily trained models, one per kind, shared by the whole module."""

    class Lazy(dict[str, KindRun]):
        def __missing__(self, kind: str) -> KindRun:
            cfg = kind_config(kinds_root, kind)
            self[kind] = KindRun(kind, cfg, digits_splits, fit(cfg, digits_splits))
            return self[kind]

    return Lazy()


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


# --- (d) seeds decide the weights --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vae-fc", "vae-conv", "cvae", "aae"])
def test_same_seed_same_weights_other_seed_different(
    tmp_path: Path, digits_splits: ImageSplits, kind: str
) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        cfg = kind_config(tmp_path, kind, "train.epochs=2", f"train.seed={seed}")
        return fit(cfg, digits_splits).model.state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert first.keys() == again.keys() == other.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), f"{kind}: {name} differs between two seed-0 runs"
    assert any(not torch.equal(first[name], other[name]) for name in first)


# --- (e) the adversarial autoencoder's three optimisers ----------------------------------------
def _ids(params: object) -> set[int]:
    return {id(p) for p in params}  # type: ignore[attr-defined]


def test_aae_optimisers_cover_the_right_parameters(kinds_root: Path) -> None:
    cfg = kind_config(kinds_root, "aae")
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16))
    assert isinstance(model, AdversarialAutoencoder)
    reconstruction, discriminator, regulariser = (
        _ids(p for group in opt.param_groups for p in group["params"]) for opt in model.make_optimizers(1e-3)
    )
    encoder, decoder = _ids(model.encoder.parameters()), _ids(model.decoder.parameters())
    critic = _ids(model.discriminator.parameters())
    assert encoder and decoder and critic
    assert reconstruction == encoder | decoder
    assert discriminator == critic
    assert regulariser == encoder
    assert encoder | decoder | critic == _ids(model.parameters())


def test_aae_step_updates_the_discriminator_and_leaves_no_gradients_in_it(
    kinds_root: Path, digits_splits: ImageSplits
) -> None:
    cfg = kind_config(kinds_root, "aae")
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16))
    optimizers = model.make_optimizers(1e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = digits_splits.train[:32]
    model.train()
    terms = model.training_step(batch, batch, None, optimizers, no_autocast)
    assert set(terms) == {"loss", "recon", "disc_loss", "gen_loss"}
    for prefix in ("discriminator.", "encoder.", "decoder."):
        changed = [
            n for n, p in model.named_parameters() if n.startswith(prefix) and not torch.equal(p, before[n])
        ]
        assert changed, f"no parameter under {prefix} changed in one training step"
    assert all(p.grad is None for p in model.discriminator.parameters())


# --- (f) the VAE's KL term ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", VARIATIONAL)
def test_vae_kl_term_is_the_gaussian_kl_of_the_posterior(runs: dict[str, KindRun], kind: str) -> None:
    run = runs[kind]
    model = run.model
    assert isinstance(model, VariationalAutoencoder)
    x, y = run.inputs(64)
    with torch.no_grad():
        terms = model.losses(x, run.splits.test[:64], y)
        mean, log_var = model.posterior(x, y)
    expected = gaussian_kl(mean, log_var).sum(1).mean()
    torch.testing.assert_close(terms["kl"], expected, rtol=1e-6, atol=1e-6)
    reference = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(terms["kl"], reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(terms["loss"], terms["recon"] + model.beta * terms["kl"])


def test_vae_kl_has_the_closed_form_for_a_fixed_posterior(kinds_root: Path) -> None:
    """Heads with zero weights give every image the posterior N(m, exp(l)): KL = ½ Σ (e^l + m² − 1 − l)."""
    cfg = kind_config(kinds_root, "vae-fc", "model.beta=0.5")
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16))
    assert isinstance(model, VariationalAutoencoder)
    m, log_v = torch.tensor([0.7, -1.2]), torch.tensor([-0.4, 0.9])
    with torch.no_grad():
        for head, value in zip(model.encoder.heads, (m, log_v), strict=True):
            head.weight.zero_()
            head.bias.copy_(value)
    images = torch.rand((6, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = model.losses(images, images)
    closed_form = 0.5 * float((log_v.exp() + m**2 - 1 - log_v).sum())
    reference = float(kl_divergence(Normal(m, (0.5 * log_v).exp()), Normal(0.0, 1.0)).sum())
    assert float(terms["kl"]) == pytest.approx(closed_form, rel=1e-6)
    assert float(terms["kl"]) == pytest.approx(reference, rel=1e-6)
    assert float(terms["loss"]) == pytest.approx(float(terms["recon"]) + 0.5 * closed_form, rel=1e-6)


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
