"""Named starting points and the rules for layering a YAML file and `key=value` overrides on them.

Order of precedence, lowest first: preset → YAML file → each `--set key=value` in turn.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from components.config import RunConfig

LESSON_AE: dict[str, Any] = {
    "name": "lesson-ae",
    "data": {"name": "digits", "image_size": 28},
    "corruption": {"kind": "none"},
    "model": {"kind": "ae", "channels": [16, 8, 8], "kernel_size": 3},
    "train": {"epochs": 30, "batch_size": 256, "lr": 1e-3, "loss": "bce"},
}
# scikit-learn's digits give ~1,300 training images, 6 batches an epoch: the denoiser needs more
# epochs than on MNIST to converge (measured: 60 epochs → 16.8 dB, 100 → ~18 dB, about 35 s / 60 s).

MNIST = {"name": "mnist", "image_size": 28}
# Two conv levels (16, 32 channels) and a dense bottleneck: what beats PCA at the same code size.
# Measured on 2 cores: 20 epochs of latent 64 took ~300 s and reached MSE 0.0055 (PCA-64: 0.0078).
DENSE_AE_MODEL = {"kind": "ae", "channels": [16, 32], "latent_dim": 16}
AE_TRAIN = {"epochs": 16, "batch_size": 64, "lr": 1e-3, "loss": "bce"}
VAE_TRAIN = {"epochs": 30, "batch_size": 128, "lr": 1e-3, "loss": "bce"}


def _preset(name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "data": MNIST, **sections}


PRESETS: dict[str, dict[str, Any]] = {
    # The lesson's convolutional autoencoder: Conv 1→16→8→8, 3×3 kernels, 2×2 max-pool, 8×4×4 code.
    "lesson-ae": LESSON_AE,
    # The same network trained as the lesson's denoiser: clamp(x + N(0.5, 0.5)) → x.
    "lesson-denoise": {
        **LESSON_AE,
        "name": "lesson-denoise",
        "model": {**LESSON_AE["model"], "kind": "denoise"},
        "corruption": {"kind": "gaussian", "mean": 0.5, "std": 0.5, "clip": True},
        "train": {**LESSON_AE["train"], "epochs": 100},
    },
    # Tiny and fast: for smoke tests and trying the tooling, not for quality.
    "smoke": {
        **LESSON_AE,
        "name": "smoke",
        "data": {"name": "digits", "image_size": 16, "limit": 200},
        "model": {"kind": "denoise", "channels": [4, 4]},
        "corruption": {"kind": "gaussian", "mean": 0.0, "std": 0.2},
        "train": {"epochs": 2, "batch_size": 64},
    },
    # --- every kind of the lesson, on MNIST (set data.root to the folder holding MNIST/raw) ------
    # 30 epochs: at 16 the 16-value codes reconstruct better than PCA-16 but their k-NN accuracy
    # trails it (0.946 vs 0.955); at 30 (91 s) they pass it (0.962).
    "ae": _preset("ae", model=DENSE_AE_MODEL, train={**AE_TRAIN, "epochs": 30}),
    "sparse-ae": _preset(
        "sparse-ae", model={**DENSE_AE_MODEL, "latent_dim": 64, "sparsity": 1e-3}, train=AE_TRAIN
    ),
    # The lesson's denoiser setting, clamp(x + N(0.5, 0.5)); a spatial 32×7×7 code.
    "denoise": _preset(
        "denoise",
        model={"kind": "denoise", "channels": [16, 32]},
        corruption={"kind": "gaussian", "mean": 0.5, "std": 0.5, "clip": True},
        train={**AE_TRAIN, "epochs": 12},
    ),
    # One conv level and a sub-pixel decoder: the code keeps the spatial detail the output needs.
    "superres-x2": _preset(
        "superres-x2",
        model={"kind": "superres", "channels": [32], "upsample": "pixelshuffle"},
        corruption={"kind": "downsample", "factor": 2, "mode": "area"},
        train={**AE_TRAIN, "epochs": 12},
    ),
    "superres-x4": _preset(
        "superres-x4",
        model={"kind": "superres", "channels": [32], "upsample": "pixelshuffle"},
        corruption={"kind": "downsample", "factor": 4, "mode": "area"},
        train={**AE_TRAIN, "epochs": 12},
    ),
    # The lesson's VAE: fully connected 784 → 512 → 2.
    "vae-fc": _preset(
        "vae-fc",
        model={"kind": "vae", "architecture": "fc", "hidden": [512], "latent_dim": 2},
        train=VAE_TRAIN,
    ),
    # The lesson's assignment: the conv encoder/decoder turned into a VAE, with one dense layer of
    # 256 between the conv features and the code. Measured on 2 cores (other work running): 20
    # epochs, 326 s, ELBO −163.2 / IWAE NLL 159.6 nats against the FC VAE's −165.3 / 162.8; without
    # the dense layer 30 epochs (361 s) gave −166.7 / 161.6.
    "vae-conv": _preset(
        "vae-conv",
        model={"kind": "vae", "channels": [16, 32], "hidden": [256], "latent_dim": 2},
        train={**VAE_TRAIN, "epochs": 20},
    ),
    "cvae": _preset(
        "cvae",
        model={"kind": "cvae", "architecture": "fc", "hidden": [512], "latent_dim": 2},
        train=VAE_TRAIN,
    ),
    "aae": _preset(
        "aae", model={"kind": "aae", "architecture": "fc", "hidden": [512], "latent_dim": 2}, train=VAE_TRAIN
    ),
    # --- photographs: random 40×40 / 48×48 patches of train400 (set data.root for other photos) for
    # training, whole images of any size at inference. Few held-out images: the real test set is set12.
    # Additive white Gaussian noise σ = 25/255, unclipped (clip=false) as in the BM3D / DnCNN benchmarks;
    # the residual model predicts the noise. Measured on 2 idle CPU cores: ~57 s an epoch, so 10
    # epochs stay inside 10 minutes; an earlier 13-epoch run gave 29.0 dB on Set12 at σ = 25 (noisy 20.3).
    "photo-denoise": {
        "name": "photo-denoise",
        "data": {
            "name": "folder",
            "root": "../shared/data/denoise/train400",
            "channels": 1,
            "image_size": 40,
            "patches": 32,
            "val_fraction": 0.05,
            "test_fraction": 0.05,
        },
        "model": {
            "kind": "denoise",
            "architecture": "fcn",
            "channels": [48, 96],
            "upsample": "pixelshuffle",
            "residual": True,
        },
        "corruption": {"kind": "gaussian", "mean": 0.0, "std": 25 / 255, "clip": False},
        "train": {"epochs": 10, "batch_size": 16, "lr": 1e-3, "loss": "mse", "num_threads": 2},
        "eval": {"photo_folder": "../shared/data/denoise/set12", "grid_images": 6},
    },
    # ×2 super-resolution: antialiased bicubic downsampling; the model corrects bicubic upsampling.
    # An epoch is 2,888 patches of 48×48: 26 images/s (110 s an epoch) with other work on the cores, so
    # 6 epochs keep a run inside about 10 minutes even then; an earlier 9-epoch run gave +0.56 dB.
    "photo-superres-x2": {
        "name": "photo-superres-x2",
        "data": {
            "name": "folder",
            "root": "../shared/data/denoise/train400",
            "channels": 1,
            "image_size": 48,
            "patches": 8,
            "val_fraction": 0.05,
            "test_fraction": 0.05,
        },
        "model": {
            "kind": "superres",
            "architecture": "fcn",
            "channels": [48, 96],
            "upsample": "pixelshuffle",
            "residual": True,
        },
        "corruption": {"kind": "downsample", "factor": 2, "mode": "bicubic"},
        "train": {"epochs": 6, "batch_size": 16, "lr": 1e-3, "loss": "mse", "num_threads": 2},
        "eval": {"photo_folder": "../shared/data/denoise/set12", "grid_images": 6},
    },
}


class ConfigError(ValueError):
    """A config that cannot be built; the message says which key and what is allowed."""


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """`train.epochs=5` → {"train": {"epochs": 5}}; the value is read as YAML (so 5 is an int)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form section.key=value (e.g. train.epochs=5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from err
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return "invalid config:\n" + "\n".join(lines)


def load_config(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Build the run config from a preset, an optional YAML file and `key=value` overrides."""
    raw: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        raw = copy.deepcopy(PRESETS[preset])
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {config_file} is not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of sections")
        raw = _deep_merge(raw, loaded)
    for text in overrides or []:
        raw = _deep_merge(raw, parse_override(text))
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
