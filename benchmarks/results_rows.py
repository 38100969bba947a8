"""The rows of RESULTS.md: which preset, with which overrides, answers which question."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    name: str
    table: str  # ae | denoise | superres | vae | generative | photo
    preset: str
    overrides: list[str] = field(default_factory=list)
    note: str = ""


ROWS: list[Row] = [
    Row(
        "lesson-ae", "ae", "lesson-ae", ["data.name=mnist", "train.epochs=30"], "the lesson's net, 8×4×4 code"
    ),
    *(
        Row(f"ae-{n}", "ae", "ae", [f"model.latent_dim={n}"], f"dense bottleneck {n}")
        for n in (2, 16, 32, 64, 128)
    ),
    Row("sparse-ae", "ae", "sparse-ae", [], "L1 on a 64-value code"),
    Row("denoise-0.3", "denoise", "denoise", ["corruption.std=0.3"], "clamp(x + N(0.5, 0.3))"),
    Row("denoise-0.5", "denoise", "denoise", [], "clamp(x + N(0.5, 0.5))"),
    Row("superres-x2", "superres", "superres-x2", [], "×2, sub-pixel decoder"),
    Row("superres-x4", "superres", "superres-x4", [], "×4, sub-pixel decoder"),
    Row("vae-fc-2", "vae", "vae-fc", [], "the lesson's 784→512→2"),
    Row("vae-conv-2", "vae", "vae-conv", [], "the assignment: conv VAE"),
    Row(
        "vae-fc-16", "vae", "vae-fc", ["model.latent_dim=16"], "optional: not in `make results`' default run"
    ),
    Row("vae-conv-16", "vae", "vae-conv", ["model.latent_dim=16"], "optional"),
    Row("cvae-2", "generative", "cvae", [], "conditional, label in encoder and decoder"),
    Row("aae-2", "generative", "aae", [], "adversarial, N(0, I) prior"),
    # Photographs: train on train400 patches, score whole Set12 images (needs ../shared/data/denoise).
    Row("photo-denoise", "photo", "photo-denoise", [], "σ = 25 model, also run at 15 and 50"),
    Row("photo-superres-x2", "photo", "photo-superres-x2", [], "×2, bicubic-downsampled input"),
    Row("photo-superres-x4", "photo", "photo-superres-x2", ["corruption.factor=4"], "×4, same model"),
]
