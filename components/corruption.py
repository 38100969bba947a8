"""Corruptions that turn a clean batch into the model's input: noise, salt-and-pepper, masks, downsampling.

Each function takes an explicit `torch.Generator`, so training draws fresh corruption for every
batch from one seeded stream, while evaluation uses a fixed seed and every run is compared on
the very same corrupted images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from components.config import CorruptionConfig


def gaussian_noise(
    clean: torch.Tensor, mean: float, std: float, clip: bool, generator: torch.Generator
) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    noisy = clean + mean + std * noise
    return noisy.clamp(0.0, 1.0) if clip else noisy


def salt_and_pepper(clean: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Half of the hit pixels turn white, half black; a hit covers all channels of a pixel."""
    n, _, h, w = clean.shape
    draw = torch.rand((n, 1, h, w), generator=generator, device=clean.device)
    out = clean.clone()
    out = torch.where(draw < amount / 2, torch.ones_like(out), out)
    return torch.where((draw >= amount / 2) & (draw < amount), torch.zeros_like(out), out)


def random_mask(clean: torch.Tensor, fraction: float, patch: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a random `fraction` of the square `patch`×`patch` tiles of each image."""
    n, _, h, w = clean.shape
    rows, cols = -(-h // patch), -(-w // patch)
    dropped = torch.rand((n, 1, rows, cols), generator=generator, device=clean.device) < fraction
    full = dropped.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)[..., :h, :w]
    return clean.masked_fill(full, 0.0)


def downsample(clean: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    """Shrink by `factor`; bilinear/bicubic are antialiased so the result is not aliased."""
    if mode == "area":
        return F.avg_pool2d(clean, kernel_size=factor)
    small = F.interpolate(clean, scale_factor=1 / factor, mode=mode, antialias=True, align_corners=False)
    return small.clamp(0.0, 1.0)


def corrupt(clean: torch.Tensor, cfg: CorruptionConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply the configured corruption to a batch (N, C, H, W) in [0, 1]."""
    if cfg.kind == "none":
        return clean
    if cfg.kind == "gaussian":
        return gaussian_noise(clean, cfg.mean, cfg.std, cfg.clip, generator)
    if cfg.kind == "salt-pepper":
        return salt_and_pepper(clean, cfg.amount, generator)
    if cfg.kind == "mask":
        return random_mask(clean, cfg.mask_fraction, cfg.mask_patch, generator)
    if cfg.kind == "downsample":
        return downsample(clean, cfg.factor, cfg.mode)
    raise ValueError(f"unknown corruption kind {cfg.kind!r}")


def corrupt_fixed(clean: torch.Tensor, cfg: CorruptionConfig, batch_size: int = 1024) -> torch.Tensor:
    """The evaluation corruption: the same images always get the same corruption (cfg.eval_seed)."""
    generator = torch.Generator(device=clean.device).manual_seed(cfg.eval_seed)
    parts = [corrupt(clean[i : i + batch_size], cfg, generator) for i in range(0, len(clean), batch_size)]
    return torch.cat(parts) if parts else clean


def model_input_shape(cfg: CorruptionConfig, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Shape (C, H, W) of what the model sees for clean images of `image_shape`."""
    c, h, w = image_shape
    if cfg.kind == "downsample":
        return c, h // cfg.factor, w // cfg.factor
    return image_shape


def trivial_baseline(corrupted: torch.Tensor, cfg: CorruptionConfig, size: tuple[int, int]) -> torch.Tensor:
    """What doing nothing clever gives: the corrupted input itself, or bicubic upsampling of it."""
    if cfg.kind == "downsample":
        return F.interpolate(corrupted, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return corrupted.clamp(0, 1)
