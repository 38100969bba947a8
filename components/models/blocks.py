"""Layers the model kinds share: the lesson's conv stacks and plain MLPs."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


def halvings(size: int, times: int) -> list[int]:
    """[size, ceil(size/2), ceil(size/4), ...]: spatial sizes after each ceil-mode 2×2 pooling."""
    sizes = [size]
    for _ in range(times):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


class ConvStack(nn.Module):
    """Encoder body: per width, a same-padded conv + ReLU + 2×2 max-pool (ceil mode, Keras "same").

    The pool runs before the ReLU: max and ReLU commute, so values and gradients are the same,
    but the ReLU then touches a quarter of the activations (measured: 8–20% faster training).
    """

    def __init__(self, in_channels: int, channels: list[int], kernel_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.ReLU(inplace=True),
            ]
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class UpsampleTo(nn.Module):
    """Upsample to a fixed size: nearest neighbour, or sub-pixel (conv → PixelShuffle ×2 → crop)."""

    def __init__(self, channels: int, size: tuple[int, int], mode: str, kernel_size: int) -> None:
        super().__init__()
        self.size = size
        self.mode = mode
        if mode == "pixelshuffle":
            self.expand = nn.Conv2d(channels, channels * 4, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        if self.mode == "pixelshuffle" and x.shape[-2] * 2 >= h and x.shape[-1] * 2 >= w:
            return F.pixel_shuffle(self.expand(x), 2)[..., :h, :w]
        return F.interpolate(x, size=self.size, mode="nearest")


class ConvUpStack(nn.Module):
    """Decoder body: the mirror of ConvStack, returning logits of `out_channels` at `out_size`.

    Upsampling goes back through the sizes the encoder passed, so 4×4 → 7 → 14 → 28 for MNIST;
    with more stages than the encoder had (super-resolution) it keeps going to the full size.
    """

    def __init__(
        self,
        widths: list[int],
        code_channels: int,
        out_channels: int,
        out_size: tuple[int, int],
        kernel_size: int,
        upsample: str,
    ) -> None:
        super().__init__()
        heights = halvings(out_size[0], len(widths))[:-1][::-1]
        lengths = halvings(out_size[1], len(widths))[:-1][::-1]
        layers: list[nn.Module] = []
        previous = code_channels
        for width, h, w in zip(widths, heights, lengths, strict=True):
            layers += [
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
                UpsampleTo(width, (h, w), upsample, kernel_size),
            ]
            previous = width
        layers.append(nn.Conv2d(previous, out_channels, kernel_size, padding=kernel_size // 2))
        self.layers = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.layers(code)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
