"""Shared, session-scoped pieces for the component tests: small real data, a trained tiny model, an export.

Everything is written under pytest's temporary folders, never into the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from components.config import RunConfig
from components.data import ImageSplits, ingest
from components.export import ExportResult, export_model
from components.models import ConvAutoencoder, build_model
from components.presets import load_config
from components.training import EpochReport, TrainResult, fit
from tests.components.kinds_support import KindRun, kind_config

# Enough epochs that the validation loss of the tiny model reliably falls from the first to the last.
TRAIN_EPOCHS = 6


def config_under(root: Path, *overrides: str, preset: str | None = None) -> RunConfig:
    """A config whose cache, checkpoints and exports all live under `root`, without a progress bar."""
    cfg = load_config(preset=preset, overrides=["train.progress=false", *overrides])
    cfg.data.cache_dir = root / "cache"
    cfg.train.checkpoint_dir = root / "checkpoints"
    cfg.export.dir = root / "exported"
    return cfg


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., RunConfig]:
    """`make_config("train.epochs=2", ...)`: a config with every output under this test's tmp_path."""

    def make(*overrides: str, preset: str | None = None) -> RunConfig:
        return config_under(tmp_path, *overrides, preset=preset)

    return make


TINY_DIGITS = (
    "data.name=digits",
    "data.image_size=16",
    "data.limit=300",
    "corruption.kind=gaussian",
    "corruption.mean=0.0",
    "corruption.std=0.2",
    "model.channels=[8, 8]",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.device=cpu",
    "train.loss=bce",
    "train.num_threads=1",  # 2 cores, often shared: more threads only contend
)


@pytest.fixture(scope="session")
def tiny_overrides() -> tuple[str, ...]:
    """Overrides for a tiny, fast digits run (the outputs still need a root: use `make_config`)."""
    return TINY_DIGITS


@dataclass(frozen=True)
class Trained:
    cfg: RunConfig
    splits: ImageSplits
    result: TrainResult
    reports: list[EpochReport]


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("digits")


@pytest.fixture(scope="session")
def digits_splits(digits_root: Path) -> ImageSplits:
    """scikit-learn's bundled digits at 16×16, at most 300 training images."""
    cfg = config_under(digits_root, *TINY_DIGITS)
    return ingest(cfg.data).splits


@pytest.fixture(scope="session")
def trained(digits_root: Path, digits_splits: ImageSplits) -> Trained:
    """A tiny denoising autoencoder trained on the digits, with every epoch report it sent."""
    cfg = config_under(digits_root, *TINY_DIGITS, f"train.epochs={TRAIN_EPOCHS}", "name=tiny-digits")
    reports: list[EpochReport] = []
    result = fit(cfg, digits_splits, on_epoch=reports.append)
    return Trained(cfg, digits_splits, result, reports)


@dataclass(frozen=True)
class Exported:
    cfg: RunConfig
    model: ConvAutoencoder
    image_shape: tuple[int, int, int]
    result: ExportResult


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A freshly built (untrained) 16×16 grayscale autoencoder exported to ONNX."""
    root = tmp_path_factory.mktemp("export")
    cfg = config_under(root, "name=tiny-export", "data.image_size=16", "model.channels=[4, 4]")
    image_shape = (1, 16, 16)
    torch.manual_seed(0)
    model = build_model(cfg.model, image_shape, image_shape).eval()
    result = export_model(model, cfg, image_shape, metrics={"test_mse": 0.5})
    return Exported(cfg, model, image_shape, result)


@pytest.fixture(scope="session")
def kinds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="session")
def runs(kinds_root: Path, digits_splits: ImageSplits) -> dict[str, KindRun]:
    """Lazily trained models, one per kind, shared by test_kinds.py and test_kinds_generative.py."""

    class Lazy(dict[str, KindRun]):
        def __missing__(self, kind: str) -> KindRun:
            cfg = kind_config(kinds_root, kind)
            self[kind] = KindRun(kind, cfg, digits_splits, fit(cfg, digits_splits))
            return self[kind]

    return Lazy()
