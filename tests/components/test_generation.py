"""Generation: prior samples, interpolations, perturbations and 2-D traversals through small real models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.generation import decode_traversal, interpolate, perturb, sample_prior, traversal_codes


class TinyDecoderModel(nn.Module):
    """A real (untrained) autoencoder on 1×6×6 images: linear encoder, linear+sigmoid decoder.

    With `conditional=True` the decoder adds a learned per-class offset, so labels change the output.
    """

    def __init__(self, latent: int = 2, generative: bool = True, conditional: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.latent = latent
        self.generative = generative
        self.conditional = conditional
        self.encoder = nn.Linear(36, latent)
        self.decoder = nn.Linear(latent, 36)
        self.class_offset = nn.Embedding(10, 36)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent,)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(images.flatten(1))

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.decoder(code)
        if self.conditional:
            assert labels is not None and labels.shape == (len(code),)
            logits = logits + self.class_offset(labels)
        return torch.sigmoid(logits).reshape(-1, 1, 6, 6)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 6, 6), generator=torch.Generator().manual_seed(seed))


def test_sample_prior_shapes_range_and_reproducibility() -> None:
    model = TinyDecoderModel(latent=3)
    first = sample_prior(model, 7, torch.Generator().manual_seed(5))
    again = sample_prior(model, 7, torch.Generator().manual_seed(5))
    other = sample_prior(model, 7, torch.Generator().manual_seed(6))
    assert first.shape == (7, 1, 6, 6)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not first.requires_grad


def test_sample_prior_decodes_standard_normal_codes() -> None:
    model = TinyDecoderModel(latent=3)
    codes = torch.randn((4, 3), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = model.decode(codes)
    torch.testing.assert_close(sample_prior(model, 4, torch.Generator().manual_seed(9)), expected)


def test_non_generative_model_cannot_sample() -> None:
    with pytest.raises(ValueError, match="not generative"):
        sample_prior(TinyDecoderModel(generative=False), 3, torch.Generator().manual_seed(0))


def test_conditional_sampling_needs_and_uses_labels() -> None:
    model = TinyDecoderModel(conditional=True)
    with pytest.raises(ValueError, match="needs class labels"):
        sample_prior(model, 3, torch.Generator().manual_seed(0))
    threes = sample_prior(model, 3, torch.Generator().manual_seed(0), labels=torch.tensor([3]))
    sevens = sample_prior(model, 3, torch.Generator().manual_seed(0), labels=torch.full((3,), 7))
    assert threes.shape == sevens.shape == (3, 1, 6, 6)
    assert not torch.allclose(threes, sevens)
    with pytest.raises(ValueError, match="expected 1 or 3 labels"):
        sample_prior(model, 3, torch.Generator().manual_seed(0), labels=torch.tensor([1, 2]))


def test_interpolation_ends_are_the_reconstructions() -> None:
    model = TinyDecoderModel(latent=4)
    a, b = images(3, seed=1), images(3, seed=2)
    strips = interpolate(model, a, b, steps=6)
    assert strips.shape == (3, 6, 1, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(strips[:, 0], model.decode(model.encode(a)))
        torch.testing.assert_close(strips[:, -1], model.decode(model.encode(b)))
        middle = model.decode((model.encode(a) + model.encode(b)) / 2)
    torch.testing.assert_close(interpolate(model, a, b, steps=3)[:, 1], middle)


def test_interpolation_with_labels_and_bad_input() -> None:
    model = TinyDecoderModel(conditional=True)
    a, b = images(2, seed=1), images(2, seed=2)
    labels = torch.tensor([1, 4])
    strips = interpolate(model, a, b, steps=4, labels=labels)
    with torch.no_grad():
        torch.testing.assert_close(strips[1, -1], model.decode(model.encode(b[1:]), labels[1:])[0])
    with pytest.raises(ValueError, match="pair up"):
        interpolate(model, a, b[:1], steps=4, labels=labels)


def test_perturb_shapes_and_noise_scale() -> None:
    model = TinyDecoderModel(latent=3)
    x = images(4)
    with torch.no_grad():
        recon = model.decode(model.encode(x))
    still = perturb(model, x, std=0.0, n=5, generator=torch.Generator().manual_seed(0))
    assert still.shape == (4, 5, 1, 6, 6)
    torch.testing.assert_close(still, recon.unsqueeze(1).expand(4, 5, 1, 6, 6))
    small = perturb(model, x, std=0.1, n=5, generator=torch.Generator().manual_seed(0))
    large = perturb(model, x, std=2.0, n=5, generator=torch.Generator().manual_seed(0))
    small_spread = float((small - recon.unsqueeze(1)).abs().mean())
    large_spread = float((large - recon.unsqueeze(1)).abs().mean())
    assert 0.0 < small_spread < large_spread
    assert not torch.allclose(small[:, 0], small[:, 1])  # the n draws differ


def test_traversal_codes_layout() -> None:
    codes = traversal_codes(steps=3, span=2.0)
    assert codes.shape == (9, 2)
    assert codes[0].tolist() == [-2.0, 2.0]  # top left: smallest z1, largest z2
    assert codes[2].tolist() == [2.0, 2.0]  # top right
    assert codes[4].tolist() == [0.0, 0.0]  # centre
    assert codes[6].tolist() == [-2.0, -2.0]  # bottom left
    assert codes[8].tolist() == [2.0, -2.0]  # bottom right
    grid = traversal_codes(steps=10, span=1.5).reshape(10, 10, 2)
    assert (grid[:, 1:, 0] > grid[:, :-1, 0]).all()  # z1 grows left to right
    assert (grid[1:, :, 1] < grid[:-1, :, 1]).all()  # z2 falls top to bottom
    assert (grid[:, :, 0] == grid[0:1, :, 0]).all() and (grid[:, :, 1] == grid[:, 0:1, 1]).all()


def test_decode_traversal_needs_a_2d_latent() -> None:
    model = TinyDecoderModel(latent=2)
    grid = decode_traversal(model, steps=10, span=2.0)
    assert grid.shape == (100, 1, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(grid, model.decode(traversal_codes(10, 2.0)))
    with pytest.raises(ValueError, match="latent of shape"):
        decode_traversal(TinyDecoderModel(latent=3))
