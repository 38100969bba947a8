"""The generative kinds' own parts: seeds decide the weights, the AAE's three optimisers, the VAE's KL.

Shares the trained models of test_kinds.py (the `runs` session fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from components.data import ImageSplits
from components.models import build_model
from components.models.aae import AdversarialAutoencoder
from components.models.vae import VariationalAutoencoder
from components.training import fit
from components.vae_metrics import gaussian_kl
from tests.components.kinds_support import (
    VARIATIONAL,
    KindRun,
    kind_config,
    no_autocast,
    one_thread,  # noqa: F401  (autouse: one thread per module)
)


# --- (d) seeds decide the weights --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vae-fc", "vae-conv", "cvae", "aae"])
def test_same_seed_same_weights_other_seed_different(
    tmp_path: Path, digits_splits: ImageSplits, kind: str
) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        # resume=false: the second seed-0 run must train again, not reuse the first one's checkpoint.
        cfg = kind_config(tmp_path, kind, "train.epochs=2", f"train.seed={seed}", "train.resume=false")
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
