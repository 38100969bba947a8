"""VAE metrics: the KL formula, ELBO terms, the IWAE bound and active units on a small real VAE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from components.vae_metrics import active_units, binarize, elbo_terms, gaussian_kl, iwae_nll, vae_report

PIXELS = 16  # 1 × 4 × 4 images


class LinearVAE(nn.Module):
    """A real (untrained) VAE: linear posterior heads and a linear Bernoulli decoder on 4×4 images.

    Only the `active` latent dimensions' posterior means depend on the input; the others are
    constant. `decoder_scale=0` makes the decoder ignore the code, so log p(x) has a closed form.
    It counts the largest batch its decoder sees, to check that metrics bound their memory.
    """

    conditional = False
    generative = True
    variational = True

    def __init__(
        self,
        latent: int = 4,
        active: tuple[int, ...] | None = None,
        seed: int = 0,
        decoder_scale: float = 1.0,
        log_var_bias: float = -1.0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.latent = latent
        self.mean_head = nn.Linear(PIXELS, latent)
        self.log_var_head = nn.Linear(PIXELS, latent)
        self.decoder = nn.Linear(latent, PIXELS)
        with torch.no_grad():
            scales = ((self.mean_head, 0.5), (self.log_var_head, 0.05), (self.decoder, decoder_scale))
            for layer, std in scales:
                layer.weight.copy_(std * torch.randn(layer.weight.shape, generator=g))
                layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=g))
            self.log_var_head.bias.add_(log_var_bias)
            if active is not None:
                inactive = [d for d in range(latent) if d not in active]
                self.mean_head.weight[inactive] = 0.0
        self.largest_decode = 0

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent,)

    def posterior(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flat = images.flatten(1)
        return self.mean_head(flat), self.log_var_head(flat)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.posterior(images, labels)[0]

    def decode_logits(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.largest_decode = max(self.largest_decode, len(code))
        return self.decoder(code).reshape(-1, 1, 4, 4)

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(code, labels))


def binary_images(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, 4, 4), generator=g) < 0.4).float()


# --- KL -----------------------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mean = 2.0 * torch.randn((50, 6), generator=g, dtype=torch.float64)
    log_var = 1.5 * torch.randn((50, 6), generator=g, dtype=torch.float64)
    expected = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0))
    ours = gaussian_kl(mean, log_var)
    assert ours.shape == (50, 6)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


def test_gaussian_kl_is_zero_only_at_the_prior() -> None:
    zero = torch.zeros(3, 5)
    assert torch.equal(gaussian_kl(zero, zero), torch.zeros(3, 5))
    g = torch.Generator().manual_seed(1)
    moved = 0.05 * torch.randn((200,), generator=g)  # small, nonzero offsets of either parameter
    assert (moved != 0).all()
    assert (gaussian_kl(moved, torch.zeros(200)) > 0).all()
    assert (gaussian_kl(torch.zeros(200), moved) > 0).all()


def test_binarize_thresholds_at_one_half() -> None:
    images = torch.tensor([0.0, 0.49, 0.5, 0.51, 1.0]).reshape(1, 1, 1, 5)
    assert binarize(images).flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert binarize(images).dtype == images.dtype


# --- ELBO and IWAE ------------------------------------------------------------------------------
def test_elbo_terms_shapes_and_sum() -> None:
    model = LinearVAE()
    images = binary_images(10)
    terms = elbo_terms(model, images, generator=torch.Generator().manual_seed(0))
    assert set(terms) == {"recon", "kl", "elbo"}
    assert all(t.shape == (10,) for t in terms.values())
    assert (terms["recon"] > 0).all() and (terms["kl"] > 0).all()
    torch.testing.assert_close(terms["elbo"], -(terms["recon"] + terms["kl"]))


def test_iwae_is_exact_when_the_posterior_is_exact() -> None:
    """Decoder ignores z and q = prior: every importance weight is p(x), for any k."""
    model = LinearVAE(decoder_scale=0.0)
    with torch.no_grad():
        model.mean_head.weight.zero_()
        model.mean_head.bias.zero_()
        model.log_var_head.weight.zero_()
        model.log_var_head.bias.zero_()
    images = binary_images(12)
    logits = model.decoder.bias.reshape(1, 1, 4, 4).expand_as(images)
    exact_nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
    for k in (1, 5, 64):
        nll = iwae_nll(model, images, k=k, generator=torch.Generator().manual_seed(k))
        torch.testing.assert_close(nll, exact_nll.detach(), rtol=1e-5, atol=1e-5)
    terms = elbo_terms(model, images, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms["elbo"], -exact_nll.detach(), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_iwae_k1_is_the_negative_elbo_in_expectation() -> None:
    model = LinearVAE()
    images = binary_images(16).repeat(250, 1, 1, 1)  # 4000 draws: 250 per image
    g = torch.Generator().manual_seed(0)
    neg_elbo = -elbo_terms(model, images, generator=g)["elbo"]
    nll_k1 = iwae_nll(model, images, k=1, generator=g)
    diff = float(nll_k1.mean() - neg_elbo.mean())
    stderr = math.sqrt(float(nll_k1.var() + neg_elbo.var()) / len(images))
    assert abs(diff) < 4 * stderr
    assert stderr < 0.05 * float(neg_elbo.mean())  # the tolerance is tight relative to the value


@torch.no_grad()
def test_iwae_tightens_with_k_and_is_below_the_negative_elbo() -> None:
    model = LinearVAE()
    images = binary_images(64)
    g = torch.Generator().manual_seed(0)
    draws = [-elbo_terms(model, images, generator=g)["elbo"] for _ in range(200)]
    neg_elbo = float(torch.stack(draws).mean())
    nll = {k: float(iwae_nll(model, images, k=k, generator=g).mean()) for k in (1, 8, 64)}
    assert nll[1] > nll[8] > nll[64]
    assert nll[64] < neg_elbo - 0.1  # a real gap, not noise
    assert abs(nll[1] - neg_elbo) < 0.05 * neg_elbo


@torch.no_grad()
def test_iwae_decodes_at_most_batch_size_at_once() -> None:
    model = LinearVAE()
    images = binary_images(40)
    nll = iwae_nll(model, images, k=50, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert nll.shape == (40,)
    assert torch.isfinite(nll).all()
    assert 0 < model.largest_decode <= 16


def test_iwae_rejects_k_zero() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        iwae_nll(LinearVAE(), binary_images(2), k=0)


# --- Active units and the report ----------------------------------------------------------------
@pytest.mark.parametrize("active", [(0, 2), (1,), (0, 1, 2, 3, 4, 5)])
def test_active_units_counts_the_input_dependent_dimensions(active: tuple[int, ...]) -> None:
    model = LinearVAE(latent=6, active=active)
    assert active_units(model, binary_images(300), batch_size=64) == len(active)


@torch.no_grad()
def test_vae_report_is_reproducible_and_consistent() -> None:
    model = LinearVAE(latent=5, active=(0, 3))
    model.train()
    g = torch.Generator().manual_seed(3)
    images = torch.rand((50, 1, 4, 4), generator=g)  # not binary: the report binarizes
    report = vae_report(model, images, k=16, seed=7, batch_size=32)
    assert model.training  # mode restored
    assert report == vae_report(model, images, k=16, seed=7, batch_size=32)
    assert report != vae_report(model, images, k=16, seed=8, batch_size=32)
    assert set(report) == {"elbo", "recon", "kl", "kl_per_dim", "active_units", "iwae_nll", "iwae_k"}
    kl_per_dim = report["kl_per_dim"]
    assert isinstance(kl_per_dim, list) and len(kl_per_dim) == 5
    assert sum(kl_per_dim) == pytest.approx(report["kl"], rel=1e-5)
    assert report["elbo"] == pytest.approx(-(report["recon"] + report["kl"]))  # type: ignore[operator]
    assert report["active_units"] == 2
    assert report["iwae_k"] == 16
    binary = binarize(images)
    mean, log_var = model.posterior(binary)
    assert report["kl"] == pytest.approx(float(gaussian_kl(mean, log_var).sum(1).mean()), rel=1e-5)
    assert report["iwae_nll"] < -report["elbo"]  # type: ignore[operator]
