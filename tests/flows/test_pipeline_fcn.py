"""A fully convolutional model through the whole flow: registered with open height and width."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from flows.pipeline import train_autoencoder
from tests.flows.conftest import sqlite_settings, tiny_config

pytestmark = pytest.mark.slow


def _photos(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(12):
        base = np.linspace(0, 255, 48)[None, :] * np.ones((48, 1))
        noisy = np.clip(base + rng.normal(0, 20, (48, 48)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"p{i}.png")


def test_fcn_denoiser_registers_with_dynamic_height_and_width(tmp_path: Path, prefect_harness: None) -> None:
    _photos(tmp_path / "photos")
    cfg = tiny_config(
        tmp_path,
        "name=fcn-denoise",
        "data.name=folder",
        f"data.root={tmp_path / 'photos'}",
        "data.channels=1",
        "data.image_size=16",
        "data.patches=4",
        "data.limit=null",
        "model.architecture=fcn",
        "model.channels=[8, 8]",
        "model.upsample=pixelshuffle",
        "model.residual=true",
        "corruption.mean=0.0",
        "corruption.std=0.1",
        "corruption.clip=false",
        "train.loss=mse",
    )
    settings = sqlite_settings(tmp_path)
    result = train_autoencoder(cfg, settings)
    assert result["champion"]["promoted"]

    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.get_model_version_by_alias("fcn-denoise", "champion")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/fcn-denoise/{version.version}")
    inputs = model.metadata.get_input_schema().inputs
    assert inputs[0].shape == (-1, 1, -1, -1)
    # Another size than the training patches, not divisible by the stride: the graph takes it.
    out = model.predict(np.random.default_rng(1).random((1, 1, 27, 35), dtype=np.float32))
    assert np.asarray(out if not isinstance(out, dict) else next(iter(out.values()))).shape == (1, 1, 27, 35)
