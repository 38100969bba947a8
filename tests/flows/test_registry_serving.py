"""The registry path: `models:/<name>@champion` through the runtime, and a real `mlflow models serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from components.runtime import AutoencoderRuntime
from flows.registry import RegistryError, fetch_registered_export
from flows.service.server import free_port
from flows.tracking import Tracker
from tests.exports import DENOISE, export_tiny
from tests.flows.conftest import sqlite_settings, tiny_config
from tests.flows.http_helpers import request


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny export logged and registered the way the pipeline does it, with `champion` on its model."""
    root = tmp_path_factory.mktemp("registry")
    export = export_tiny(root / "exported", "reg-denoise", *DENOISE)
    settings = sqlite_settings(root)
    tracker = Tracker(settings)
    run_id = tracker.start_run(tiny_config(root, "name=reg-denoise"))
    versions = tracker.log_onnx_models(run_id, export.folder, export.manifest, "reg-denoise")
    tracker.end_run(run_id)
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.set_registered_model_alias("reg-denoise", "champion", versions["model"])
    return {"root": root, "folder": export.folder, "uri": settings.tracking_uri, "versions": versions}


def test_champion_alias_loads_the_same_graphs(registry: dict, tmp_path: Path) -> None:
    from_registry = AutoencoderRuntime.load("models:/reg-denoise@champion", tracking_uri=registry["uri"])
    local = AutoencoderRuntime(registry["folder"])
    assert from_registry.manifest == local.manifest  # the manifest came with the registered graphs
    images = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    for method in ("encode", "reconstruct"):
        np.testing.assert_array_equal(getattr(from_registry, method)(images), getattr(local, method)(images))
    # Any of the three names, by version, identifies the same run.
    folder = fetch_registered_export(
        f"models:/reg-denoise-encoder/{registry['versions']['encoder']}", registry["uri"], tmp_path / "x"
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "decoder.onnx",
        "encoder.onnx",
        "manifest.json",
        "model.onnx",
    ]


@pytest.mark.parametrize(
    ("uri", "message"),
    [("models:/reg-denoise@nobody", "not in the registry"), ("models:/unknown/1", "not in the registry"),
     ("models:/reg-denoise", "expected models:/")],
)  # fmt: skip
def test_unknown_or_malformed_registry_uris(registry: dict, uri: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        fetch_registered_export(uri, registry["uri"])


@pytest.fixture(scope="module")
def mlflow_server(registry: dict) -> Iterator[str]:
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # `mlflow models serve` execs `uvicorn` by name: the virtualenv's bin must be on PATH, as when activated.
    path = f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": registry["uri"],
        "MLFLOW_REGISTRY_URI": registry["uri"],
    }
    model = "models:/reg-denoise@champion"
    command = [str(mlflow_cli), "models", "serve", "-m", model, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]  # fmt: skip
    log = (registry["root"] / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=registry["root"])
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    try:
        while True:
            try:
                if request(base, "GET", "/ping").status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "mlflow models serve did not start:\n" + (registry["root"] / "serve.log").read_text()
                )
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_batch(mlflow_server: str, registry: dict) -> None:
    images = np.random.default_rng(1).random((4, 1, 16, 16), dtype=np.float32)
    body = json.dumps({"inputs": images.tolist()}).encode()
    reply = request(mlflow_server, "POST", "/invocations", body, {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:500]
    predictions = json.loads(reply.body)["predictions"]
    values = next(iter(predictions.values())) if isinstance(predictions, dict) else predictions
    expected = AutoencoderRuntime(registry["folder"]).reconstruct(images)
    np.testing.assert_allclose(np.asarray(values).reshape(expected.shape), expected, atol=1e-5)
