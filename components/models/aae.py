"""Adversarial autoencoder (Makhzani et al., 2015): a discriminator pushes the codes towards N(0, I).

Each batch takes three separate steps, each with its own optimiser and its own zeroed gradients:
1. reconstruction: encoder + decoder minimise the reconstruction loss;
2. discriminator: learns to tell prior samples (label 1) from detached codes (label 0);
3. regularisation: the encoder alone learns to make the discriminator call its codes real.
The discriminator loss starts near 2·ln 2 (chance for both halves) and moves as it learns.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F

from components.config import ModelConfig
from components.models.base import Autoencoder, reconstruction_loss
from components.models.blocks import mlp
from components.models.vae import LatentDecoder, LatentEncoder


class AdversarialAutoencoder(Autoencoder):
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
        self.num_classes = 0
        self.encoder = _SingleHead(LatentEncoder(cfg, input_shape, 0, heads=1))
        self.decoder = LatentDecoder(cfg, output_shape, 0)
        self.discriminator = mlp([cfg.latent_dim, cfg.disc_hidden, cfg.disc_hidden, 1])
        self._latent_shape = (cfg.latent_dim,)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self._latent_shape

    def _recon(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.encoder(inputs))
        return reconstruction_loss(logits, target, self.loss_kind).mean() / target[0].numel()

    def _discriminator_loss(self, codes: torch.Tensor) -> torch.Tensor:
        prior = torch.randn_like(codes)
        real, fake = self.discriminator(prior).float(), self.discriminator(codes).float()
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))

    def losses(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        recon = self._recon(inputs, target)
        disc = self._discriminator_loss(self.encoder(inputs))
        return {"loss": recon, "recon": recon, "disc_loss": disc}

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [
            torch.optim.Adam(autoencoder, lr=lr),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr),
            torch.optim.Adam(self.encoder.parameters(), lr=lr),
        ]

    def training_step(
        self,
        inputs: torch.Tensor,
        target: torch.Tensor,
        labels: torch.Tensor | None,
        optimizers: list[torch.optim.Optimizer],
        autocast: Callable[[], AbstractContextManager[object]],
    ) -> dict[str, torch.Tensor]:
        reconstruction, discriminator, regulariser = optimizers

        reconstruction.zero_grad(set_to_none=True)
        with autocast():
            recon = self._recon(inputs, target)
        recon.backward()
        reconstruction.step()

        discriminator.zero_grad(set_to_none=True)
        with autocast():
            disc = self._discriminator_loss(self.encoder(inputs).detach())
        disc.backward()
        discriminator.step()

        regulariser.zero_grad(set_to_none=True)
        with autocast():
            verdict = self.discriminator(self.encoder(inputs)).float()
            fool = F.binary_cross_entropy_with_logits(verdict, torch.ones_like(verdict))
        fool.backward()
        regulariser.step()
        # The regulariser step must not leave gradients in the discriminator for the next batch.
        self.discriminator.zero_grad(set_to_none=True)
        return {"loss": recon.detach(), "recon": recon.detach(), "disc_loss": disc.detach(),
                "gen_loss": fool.detach()}  # fmt: skip


class _SingleHead(torch.nn.Module):
    def __init__(self, encoder: LatentEncoder) -> None:
        super().__init__()
        self.inner = encoder

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(images)[0]
