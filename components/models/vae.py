"""Variational autoencoders: the lesson's fully connected one (784 → 512 → 2), its convolutional
version (the lesson's assignment), and the conditional variant that also sees the digit's label.

The encoder returns the posterior's mean and log-variance, and everything downstream treats the
second head as a log-variance: σ = exp(½·log_var) for sampling and the matching closed-form
KL(q‖N(0, I)) = −½ Σ (1 + log_var − mean² − exp(log_var)). (The lesson samples with exp(log σ)
but computes the KL as if the head were a log-variance; that inconsistency is not repeated.)
Sampling happens only in the loss: `encode` returns the mean, and the exported encoder returns
both heads so callers sample outside the graph.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelConfig
from components.models.base import Autoencoder, reconstruction_loss
from components.models.blocks import ConvStack, ConvUpStack, halvings, mlp
from components.vae_metrics import gaussian_kl


class LatentEncoder(nn.Module):
    """Images (and labels, if conditional) → `heads` vectors of size latent_dim."""

    def __init__(
        self, cfg: ModelConfig, input_shape: tuple[int, int, int], num_classes: int, heads: int
    ) -> None:
        super().__init__()
        assert cfg.latent_dim is not None
        c, h, w = input_shape
        self.num_classes = num_classes
        if cfg.architecture == "fc":
            self.body: nn.Module = nn.Sequential(nn.Flatten(), mlp([c * h * w, *cfg.hidden]), nn.ReLU())
            features = cfg.hidden[-1]
        else:
            # The conv features pass through the dense `hidden` layers before the heads: a 2-D code
            # read straight off 1,568 conv features (MNIST, channels [16, 32]) trains worse than FC.
            depth = len(cfg.channels)
            conv_features = cfg.channels[-1] * halvings(h, depth)[-1] * halvings(w, depth)[-1]
            self.body = nn.Sequential(
                ConvStack(c, cfg.channels, cfg.kernel_size),
                nn.Flatten(),
                mlp([conv_features, *cfg.hidden]),
                nn.ReLU(),
            )
            features = cfg.hidden[-1]
        self.heads = nn.ModuleList(nn.Linear(features + num_classes, cfg.latent_dim) for _ in range(heads))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        features = self.body(images)
        if self.num_classes:
            assert labels is not None, "a conditional model needs labels"
            features = torch.cat([features, F.one_hot(labels, self.num_classes).to(features.dtype)], dim=1)
        return tuple(head(features) for head in self.heads)


class LatentDecoder(nn.Module):
    """Code vector (and labels, if conditional) → image logits."""

    def __init__(self, cfg: ModelConfig, output_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        assert cfg.latent_dim is not None
        c, h, w = output_shape
        self.num_classes = num_classes
        width = cfg.latent_dim + num_classes
        if cfg.architecture == "fc":
            self.body: nn.Module = nn.Sequential(
                mlp([width, *cfg.hidden[::-1], c * h * w]), nn.Unflatten(1, output_shape)
            )
        else:
            depth = len(cfg.channels)
            code_shape = (cfg.channels[-1], halvings(h, depth)[-1], halvings(w, depth)[-1])
            self.body = nn.Sequential(
                mlp([width, *cfg.hidden[::-1], math.prod(code_shape)]),
                nn.ReLU(inplace=True),
                nn.Unflatten(1, code_shape),
                ConvUpStack(cfg.channels[::-1], cfg.channels[-1], c, (h, w), cfg.kernel_size, cfg.upsample),
            )

    def forward(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            assert labels is not None, "a conditional model needs labels"
            code = torch.cat([code, F.one_hot(labels, self.num_classes).to(code.dtype)], dim=1)
        return self.body(code)


class VariationalAutoencoder(Autoencoder):
    variational = True
    generative = True

    def __init__(
        self,
        cfg: ModelConfig,
        input_shape: tuple[int, int, int],
        output_shape: tuple[int, int, int],
        loss: str,
    ) -> None:
        super().__init__(loss)
        assert cfg.latent_dim is not None
        self.num_classes = cfg.num_classes if self.conditional else 0
        self.beta = cfg.beta
        self.encoder = LatentEncoder(cfg, input_shape, self.num_classes, heads=2)
        self.decoder = LatentDecoder(cfg, output_shape, self.num_classes)
        self._latent_shape = (cfg.latent_dim,)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self._latent_shape

    def posterior(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(images, labels)
        return mean, log_var

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.posterior(images, labels)[0]

    def decode_logits(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(code, labels)

    def losses(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Negative ELBO per image (nats for bce), averaged over the batch: recon + β·KL."""
        mean, log_var = self.posterior(inputs, labels)
        mean, log_var = mean.float(), log_var.float()
        code = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        recon = reconstruction_loss(self.decode_logits(code, labels), target, self.loss_kind).mean()
        kl = gaussian_kl(mean, log_var).sum(dim=1).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}


class ConditionalVAE(VariationalAutoencoder):
    """A VAE whose encoder and decoder both see the class label: decode(z, label=7) draws a 7."""

    conditional = True
