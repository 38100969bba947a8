"""Likelihood-based scores for variational autoencoders: ELBO terms, IWAE bound, active units.

Reconstruction error alone cannot compare VAEs: a model can trade a worse reconstruction for a
tighter code. The standard comparison is the negative log-likelihood in nats under a Bernoulli
decoder, estimated by importance sampling (Burda et al., 2016, "Importance Weighted
Autoencoders"), next to the ELBO it bounds and the number of latent dimensions actually used.

All scores assume binary pixels (Bernoulli likelihood), so `vae_report` binarizes the images
first; the lower-level functions score whatever images they are given.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.distributions import Normal


class VariationalModel(Protocol):
    """What these metrics need from a model: a diagonal Gaussian posterior and a Bernoulli decoder."""

    training: bool

    def posterior(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...

    def decode_logits(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...

    def train(self, mode: bool = True) -> Any: ...


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) ‖ N(0, I)) per dimension, in nats: −½(1 + log_var − mean² − exp(log_var)).

    Kept per dimension (same shape as `mean`) so callers can both sum it into the ELBO and see
    which dimensions carry information.
    """
    return -0.5 * (1.0 + log_var - mean.pow(2) - log_var.exp())


def binarize(images: torch.Tensor) -> torch.Tensor:
    """Pixels ≥ 0.5 become 1, the rest 0 (float, same shape).

    A Bernoulli likelihood is only a proper likelihood for binary data. The threshold is fixed
    rather than sampled (no "dynamic binarization"), so every run scores the very same test set
    and results are reproducible; the numbers are therefore not directly comparable with papers
    that report NLL on stochastically binarized MNIST.
    """
    return (images >= 0.5).to(images.dtype)


def _bernoulli_log_likelihood(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """log p(x | z) summed over pixels, from logits, for (..., C, H, W) → (...)."""
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), images.float(), reduction="none")
    return -per_pixel.flatten(-3).sum(dim=-1)


def _randn_like(
    tensor: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None
) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=tensor.device, dtype=tensor.dtype)


def elbo_terms(
    model: VariationalModel,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Single-sample (reparameterised) ELBO per image, in nats: "recon", "kl" and "elbo", each (N,).

    "recon" is the Bernoulli negative log-likelihood of the images under one posterior sample,
    "kl" the analytic KL to the standard normal prior, and "elbo" = −(recon + kl).
    """
    mean, log_var = model.posterior(images, labels)
    mean, log_var = mean.float(), log_var.float()
    code = mean + (0.5 * log_var).exp() * _randn_like(mean, tuple(mean.shape), generator)
    recon = -_bernoulli_log_likelihood(model.decode_logits(code, labels), images)
    kl = gaussian_kl(mean, log_var).flatten(1).sum(dim=1)
    return {"recon": recon, "kl": kl, "elbo": -(recon + kl)}


def iwae_nll(
    model: VariationalModel,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    k: int = 64,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sampled negative log-likelihood per image in nats, (N,), with `k` posterior samples.

    −log (1/k) Σ_k p(x | z_k) p(z_k) / q(z_k | x), with z_k ~ q(z | x) (Burda et al., 2016). For k = 1
    this is the negative single-sample ELBO; it decreases towards −log p(x) as k grows, so it is
    the tighter (never looser, in expectation) estimate. At most `batch_size` images × samples
    are decoded at once, so k can be large without running out of memory.
    """
    if k < 1 or batch_size < 1:
        raise ValueError(f"k ({k}) and batch_size ({batch_size}) must be positive")
    results = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        y = None if labels is None else labels[start : start + batch_size]
        mean, log_var = model.posterior(x, y)
        q = Normal(mean.float(), (0.5 * log_var.float()).exp())
        prior = Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))
        chunk = max(1, batch_size // len(x))
        log_weights = []
        for done in range(0, k, chunk):
            s = min(chunk, k - done)
            code = q.loc + q.scale * _randn_like(q.loc, (s, *q.loc.shape), generator)  # (s, b, ...)
            logits = model.decode_logits(code.flatten(0, 1), None if y is None else y.repeat(s))
            log_px = _bernoulli_log_likelihood(logits.unflatten(0, (s, len(x))), x.expand(s, *x.shape))
            log_pz = prior.log_prob(code).flatten(2).sum(dim=2)
            log_qz = q.log_prob(code).flatten(2).sum(dim=2)
            log_weights.append(log_px + log_pz - log_qz)  # (s, b)
        log_w = torch.cat(log_weights, dim=0)
        results.append(-(torch.logsumexp(log_w, dim=0) - math.log(k)))
    return torch.cat(results) if results else images.new_zeros(0)


def active_units(
    model: VariationalModel,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    threshold: float = 0.01,
    batch_size: int = 512,
) -> int:
    """Latent dimensions whose posterior mean varies across the data: Var_x(E_q[z | x]) > `threshold`.

    The measure of Burda et al. (2016): a dimension whose posterior mean ignores the input has
    collapsed to the prior and carries no information, however large the latent space.
    """
    codes = torch.cat(
        [
            model.encode(images[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    )
    variance = codes.float().flatten(1).var(dim=0)
    return int((variance > threshold).sum())


def vae_report(
    model: VariationalModel,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    k: int = 64,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float | list[float]]:
    """ELBO, its terms, KL per dimension, active units and the IWAE NLL on the binarized images.

    Means over images, in nats. Sampling is seeded (`seed`), so repeated reports on the same
    model and data agree exactly. The model is scored in eval mode; its previous mode is restored.
    """
    binary = binarize(images)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            recon, kl, kl_dims = [], [], []
            for i in range(0, len(binary), batch_size):
                x = binary[i : i + batch_size]
                y = None if labels is None else labels[i : i + batch_size]
                terms = elbo_terms(model, x, y, generator)
                recon.append(terms["recon"])
                kl.append(terms["kl"])
                mean, log_var = model.posterior(x, y)
                kl_dims.append(gaussian_kl(mean.float(), log_var.float()).flatten(1))
            nll = iwae_nll(model, binary, labels, k=k, batch_size=batch_size, generator=generator)
            units = active_units(model, binary, labels)
    finally:
        model.train(was_training)
    recon_mean, kl_mean = float(torch.cat(recon).mean()), float(torch.cat(kl).mean())
    return {
        "elbo": -(recon_mean + kl_mean),
        "recon": recon_mean,
        "kl": kl_mean,
        "kl_per_dim": torch.cat(kl_dims).mean(dim=0).tolist(),
        "active_units": units,
        "iwae_nll": float(nll.mean()),
        "iwae_k": k,
    }
