"""Model kinds by name. Each model is plain PyTorch built from its config section and two shapes."""

from __future__ import annotations

from torch import nn

from components.config import ModelConfig
from components.models.aae import AdversarialAutoencoder
from components.models.base import Autoencoder, GraphSpec
from components.models.conv_ae import ConvAutoencoder
from components.models.vae import ConditionalVAE, VariationalAutoencoder


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, int, int],
    output_shape: tuple[int, int, int],
    loss: str = "bce",
) -> Autoencoder:
    """Build the configured autoencoder for inputs of `input_shape` and outputs of `output_shape`.

    `loss` is the reconstruction likelihood (bce: Bernoulli, mse: Gaussian).
    """
    if cfg.kind in ("ae", "denoise", "superres"):
        if cfg.architecture == "fcn":
            from components.models.fcn import FullyConvAutoencoder

            return FullyConvAutoencoder(cfg, input_shape, output_shape, loss)
        if cfg.architecture == "fc":
            raise ValueError("model.architecture=fc is for vae, cvae and aae; use conv for the plain kinds")
        return ConvAutoencoder(cfg, input_shape, output_shape, loss)
    if cfg.kind == "vae":
        return VariationalAutoencoder(cfg, input_shape, output_shape, loss)
    if cfg.kind == "cvae":
        return ConditionalVAE(cfg, input_shape, output_shape, loss)
    if cfg.kind == "aae":
        return AdversarialAutoencoder(cfg, input_shape, output_shape, loss)
    raise ValueError(f"unknown model kind {cfg.kind!r}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Autoencoder", "GraphSpec", "build_model", "parameter_count"]
