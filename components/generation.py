"""Looking inside a latent space: samples from the prior, interpolations, perturbations, 2-D traversals.

These produce images only; `components.figures` draws them. Every random draw takes an explicit
`torch.Generator`, so a figure made twice from the same model is the same figure.
"""

from __future__ import annotations

from typing import Protocol

import torch


class LatentModel(Protocol):
    """What generation needs: a deterministic encoder, a decoder to images and the code's shape."""

    @property
    def conditional(self) -> bool: ...

    @property
    def generative(self) -> bool: ...

    @property
    def latent_shape(self) -> tuple[int, ...]: ...

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


def _check_labels(model: LatentModel, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Labels for `n` images: required by conditional models (one, broadcast, or one per image)."""
    if not model.conditional:
        return None
    if labels is None:
        raise ValueError("a conditional model needs class labels")
    labels = labels.reshape(-1)
    if len(labels) == 1:
        return labels.expand(n)
    if len(labels) != n:
        raise ValueError(f"expected 1 or {n} labels, got {len(labels)}")
    return labels


@torch.no_grad()
def sample_prior(
    model: LatentModel, n: int, generator: torch.Generator, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Decode `n` codes drawn from the standard normal prior: (n, C, H, W) images in [0, 1].

    Only meaningful for models trained to match that prior (VAE, CVAE, AAE); a plain
    autoencoder's code space has no distribution to sample from, so it raises.
    """
    if not model.generative:
        raise ValueError("this model has no prior to sample from (not generative)")
    codes = torch.randn((n, *model.latent_shape), generator=generator, device=generator.device)
    return model.decode(codes, _check_labels(model, labels, n))


@torch.no_grad()
def interpolate(
    model: LatentModel,
    a_images: torch.Tensor,
    b_images: torch.Tensor,
    steps: int,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode `steps` evenly spaced codes from encode(a) to encode(b) per pair: (pairs, steps, C, H, W).

    The first and last steps are the reconstructions of a and b. For a conditional model the
    labels condition both ends and every step (the class is held fixed along the path).
    """
    if a_images.shape != b_images.shape:
        raise ValueError(f"a {tuple(a_images.shape)} and b {tuple(b_images.shape)} must pair up")
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, got {steps}")
    pairs = len(a_images)
    y = _check_labels(model, labels, pairs)
    a, b = model.encode(a_images, y), model.encode(b_images, y)
    weights = torch.linspace(0.0, 1.0, steps, device=a.device, dtype=a.dtype)
    weights = weights.reshape(1, steps, *([1] * (a.dim() - 1)))
    codes = torch.lerp(a.unsqueeze(1), b.unsqueeze(1), weights)  # (pairs, steps, ...)
    images = model.decode(codes.flatten(0, 1), None if y is None else y.repeat_interleave(steps))
    return images.unflatten(0, (pairs, steps))


@torch.no_grad()
def perturb(
    model: LatentModel,
    images: torch.Tensor,
    std: float,
    n: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode each image's code plus `n` draws of Gaussian noise of scale `std`: (N, n, C, H, W).

    Shows how smooth the decoder is around the data: in a plain autoencoder small steps off a
    code can land on images that look like nothing, which is what a VAE's prior is meant to fix.
    """
    y = _check_labels(model, labels, len(images))
    codes = model.encode(images, y)
    noise = torch.randn((len(images), n, *codes.shape[1:]), generator=generator, device=generator.device)
    noisy = codes.unsqueeze(1) + std * noise.to(codes.dtype).to(codes.device)
    out = model.decode(noisy.flatten(0, 1), None if y is None else y.repeat_interleave(n))
    return out.unflatten(0, (len(images), n))


def traversal_codes(steps: int = 10, span: float = 2.0) -> torch.Tensor:
    """A `steps`×`steps` grid over [−span, span]² as (steps², 2) codes (z1, z2), read like an image.

    Row by row, top to bottom in decreasing z2; within a row left to right in increasing z1 —
    the layout of the usual latent-manifold figure, so code i belongs at row i // steps,
    column i % steps of the picture.
    """
    if steps < 2:
        raise ValueError(f"a traversal needs at least 2 steps, got {steps}")
    axis = torch.linspace(-span, span, steps)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


@torch.no_grad()
def decode_traversal(
    model: LatentModel,
    steps: int = 10,
    span: float = 2.0,
    labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Decode `traversal_codes(steps, span)`: (steps², C, H, W), for models with a 2-D latent only.

    `device` is where the model lives (the codes are made there).
    """
    if tuple(model.latent_shape) != (2,):
        raise ValueError(f"a 2-D traversal needs a latent of shape (2,), got {tuple(model.latent_shape)}")
    codes = traversal_codes(steps, span).to(device)
    return model.decode(codes, _check_labels(model, labels, len(codes)))
