"""The lesson's convolutional autoencoder, generalised only where a config value asks for it.

Encoder: for each width in `channels`, a same-padded conv + ReLU + 2×2 max-pool (ceil mode, like
Keras' "same" pooling): 28×28 → 14 → 7 → 4, so channels [16, 8, 8] give the lesson's 8×4×4 code.
Decoder: the mirror image, with nearest-neighbour upsampling back through the same sizes and a
final conv to the image channels. The decoder keeps its output size, so a downsampled input
(super-resolution) is decoded to the full-size image.
"""

from __future__ import annotations

import torch
from torch import nn


def _halvings(size: int, times: int) -> list[int]:
    """[size, ceil(size/2), ceil(size/4), ...] — the spatial sizes after each ceil-mode pooling."""
    sizes = [size]
    for _ in range(times):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


class ConvEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], kernel_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class ConvDecoder(nn.Module):
    def __init__(
        self, channels: list[int], out_channels: int, out_size: tuple[int, int], kernel_size: int
    ) -> None:
        super().__init__()
        heights = _halvings(out_size[0], len(channels))[:-1][::-1]
        widths = _halvings(out_size[1], len(channels))[:-1][::-1]
        widths_out = channels[::-1]
        layers: list[nn.Module] = []
        previous = channels[-1]
        for width, h, w in zip(widths_out, heights, widths, strict=True):
            layers += [
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
                nn.Upsample(size=(h, w), mode="nearest"),
            ]
            previous = width
        layers.append(nn.Conv2d(previous, out_channels, kernel_size, padding=kernel_size // 2))
        self.to_logits = nn.Sequential(*layers)

    def logits(self, code: torch.Tensor) -> torch.Tensor:
        return self.to_logits(code)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.to_logits(code))


class ConvAutoencoder(nn.Module):
    """`forward` maps images to images in [0, 1]; `logits` is the pre-sigmoid output for the loss."""

    def __init__(
        self,
        in_channels: int,
        out_size: tuple[int, int],
        channels: list[int],
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(in_channels, channels, kernel_size)
        self.decoder = ConvDecoder(channels, in_channels, out_size, kernel_size)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder.logits(self.encoder(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))
