"""The lesson's convolutional autoencoder, and its variants for every deterministic kind.

Encoder: per width in `channels`, a same-padded conv + ReLU + 2×2 max-pool: 28×28 → 14 → 7 → 4,
so [16, 8, 8] gives the lesson's 8×4×4 code. `latent_dim` adds a dense bottleneck of that size
(2 for plotting, 16, 32, ...). Decoder: the mirror, upsampling (nearest or sub-pixel) back
through the same sizes; for super-resolution it has extra stages up to the full-size output.
`sparsity` > 0 adds an L1 penalty on the code (the sparse autoencoder of the Keras blog).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from components.config import ModelConfig
from components.models.base import Autoencoder, reconstruction_loss
from components.models.blocks import ConvStack, ConvUpStack, halvings


class ConvAutoencoder(Autoencoder):
    def __init__(
        self,
        cfg: ModelConfig,
        input_shape: tuple[int, int, int],
        output_shape: tuple[int, int, int],
        loss: str,
    ) -> None:
        super().__init__(loss)
        c_in, h_in, w_in = input_shape
        c_out, h_out, w_out = output_shape
        scale = h_out // h_in
        if h_out != h_in * scale or w_out != w_in * scale or scale & (scale - 1):
            raise ValueError(f"output {output_shape} must be a power-of-two multiple of input {input_shape}")
        depth = len(cfg.channels)
        code_shape = (cfg.channels[-1], halvings(h_in, depth)[-1], halvings(w_in, depth)[-1])
        features = math.prod(code_shape)
        self.sparsity = cfg.sparsity

        encoder: list[nn.Module] = [ConvStack(c_in, cfg.channels, cfg.kernel_size)]
        decoder: list[nn.Module] = []
        if cfg.latent_dim is not None:
            encoder += [nn.Flatten(), nn.Linear(features, cfg.latent_dim)]
            decoder += [
                nn.Linear(cfg.latent_dim, features),
                nn.ReLU(inplace=True),
                nn.Unflatten(1, code_shape),
            ]
        widths = cfg.channels[::-1] + [cfg.channels[0]] * int(math.log2(scale))
        decoder.append(
            ConvUpStack(widths, cfg.channels[-1], c_out, (h_out, w_out), cfg.kernel_size, cfg.upsample)
        )
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self._latent_shape = (cfg.latent_dim,) if cfg.latent_dim is not None else code_shape

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self._latent_shape

    def losses(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        code = self.encoder(inputs)
        logits = self.decoder(code)
        # Mean per pixel, so the number reads the same at any image size.
        recon = reconstruction_loss(logits, target, self.loss_kind).mean() / target[0].numel()
        terms = {"recon": recon, "loss": recon}
        if self.sparsity > 0:
            l1 = code.float().abs().mean()
            terms["l1"] = l1
            terms["loss"] = recon + self.sparsity * l1
        return terms
