"""Model kinds by name. Each model is plain PyTorch built from its config section and two shapes."""

from __future__ import annotations

from torch import nn

from components.config import ModelConfig
from components.models.conv_ae import ConvAutoencoder


def build_model(
    cfg: ModelConfig, input_shape: tuple[int, int, int], output_shape: tuple[int, int, int]
) -> ConvAutoencoder:
    """Build the configured autoencoder for inputs of `input_shape` and outputs of `output_shape`.

    Every model has `.encoder` and `.decoder` submodules (exported as separate ONNX graphs),
    `forward(x) -> images in [0, 1]` and `logits(x)` for a numerically stable loss.
    """
    if cfg.kind == "conv-ae":
        return ConvAutoencoder(
            in_channels=input_shape[0],
            out_size=(output_shape[1], output_shape[2]),
            channels=list(cfg.channels),
            kernel_size=cfg.kernel_size,
        )
    raise ValueError(f"unknown model kind {cfg.kind!r}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ConvAutoencoder", "build_model", "parameter_count"]
