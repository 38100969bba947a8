"""Tiny exports built by the tests themselves (untrained or briefly trained), never read from shared/."""

from __future__ import annotations

from pathlib import Path

import torch

from components.corruption import model_input_shape
from components.export import ExportResult, export_model
from components.models import build_model
from components.presets import load_config

# A 16×16 VAE with a 2-D code: generative, and the latent explorer shows its plane.
VAE_2D = ("model.kind=vae", "model.architecture=fc", "model.hidden=[32]", "model.latent_dim=2")
# A ×2 super-resolution model: 8×8 in, 16×16 out.
SUPERRES = ("model.kind=superres", "model.channels=[4]", "corruption.kind=downsample", "corruption.factor=2")
DENOISE = ("model.kind=denoise", "model.channels=[4, 4]", "corruption.kind=gaussian")


def export_tiny(root: Path, name: str, *overrides: str, seed: int = 0) -> ExportResult:
    """Build a 16×16 grayscale model of the given kind with fixed weights and export it under `root`."""
    cfg = load_config(
        None,
        overrides=[
            f"name={name}",
            "data.image_size=16",
            "model.channels=[4, 4]",
            f"export.dir={root}",
            *overrides,
        ],
    )
    image_shape = (1, 16, 16)
    torch.manual_seed(seed)
    model = build_model(cfg.model, model_input_shape(cfg.corruption, image_shape), image_shape).eval()
    return export_model(model, cfg, image_shape, metrics={"test_mse": 0.5})
