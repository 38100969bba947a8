"""The whole pipeline under a real Prefect API, with MLflow on a SQLite file and onnxruntime."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.data import ImageSplits, cache_path
from components.evaluation import image_quality
from components.runtime import OnnxAutoencoder
from flows.pipeline import train_autoencoder
from flows.settings import MlflowSettings
from flows.tracking import TrackingUnavailableError
from tests.flows.conftest import sqlite_settings, tiny_config


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    cfg = tiny_config(root)
    settings = sqlite_settings(root)
    result = train_autoencoder(cfg, settings)
    return {"root": root, "cfg": cfg, "settings": settings, "result": result}


@pytest.mark.slow
def test_mlflow_run_has_params_metrics_and_pictures(pipeline_run: dict) -> None:
    cfg, result = pipeline_run["cfg"], pipeline_run["result"]
    client = MlflowClient(
        pipeline_run["settings"].tracking_uri, registry_uri=pipeline_run["settings"].tracking_uri
    )
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == str(cfg.train.epochs)
    assert run.data.params["corruption.kind"] == cfg.corruption.kind
    for key, value in result["metrics"].items():
        assert run.data.metrics[key] == pytest.approx(value)
    history = client.get_metric_history(result["run_id"], "val_loss")
    assert [m.step for m in history] == list(range(1, cfg.train.epochs + 1))
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], "figures")}
    # A denoiser with a spatial code: no latent scatter, traversal or prior samples.
    assert artifacts == {
        "figures/reconstructions.png",
        "figures/loss_curves.png",
        "figures/interpolation.png",
    }
    manifest_copy = client.download_artifacts(
        result["run_id"], "export/manifest.json", str(pipeline_run["root"])
    )
    assert json.loads(Path(manifest_copy).read_text())["mlflow_run_id"] == result["run_id"]


@pytest.mark.slow
def test_models_are_registered_from_this_run(pipeline_run: dict) -> None:
    result, settings = pipeline_run["result"], pipeline_run["settings"]
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    names = settings.registered_models.for_run(pipeline_run["cfg"].name)
    assert set(result["registered_versions"]) == {"encoder", "decoder", "model"}
    for role, version in result["registered_versions"].items():
        registered = client.get_model_version(names[role], version)
        assert registered.run_id == result["run_id"]


@pytest.mark.slow
def test_exported_graphs_reproduce_the_reported_metrics(pipeline_run: dict) -> None:
    """onnxruntime on the fixed evaluation inputs scores exactly what the run logged."""
    cfg, result = pipeline_run["cfg"], pipeline_run["result"]
    runtime = OnnxAutoencoder(result["export_dir"])
    assert runtime.manifest["mlflow_run_id"] == result["run_id"]
    splits = ImageSplits.load(cache_path(cfg.data))
    eval_inputs = pipeline_run["root"] / "cache" / "runs" / result["run_id"] / "eval-inputs.pt"
    corrupted = torch.load(eval_inputs, weights_only=True)
    output = torch.from_numpy(runtime.reconstruct(corrupted.numpy()))
    scores = image_quality(output, splits.test)
    assert scores["psnr"] == pytest.approx(result["metrics"]["test_psnr"], abs=1e-3)
    assert scores["mse"] == pytest.approx(result["metrics"]["test_mse"], rel=1e-4)
    via_parts = runtime.decode(runtime.encode(corrupted.numpy()))
    np.testing.assert_allclose(via_parts, output.numpy(), atol=1e-5)


@pytest.mark.slow
def test_registered_onnx_model_loads_through_mlflow_pyfunc(pipeline_run: dict) -> None:
    result, settings = pipeline_run["result"], pipeline_run["settings"]
    name = settings.registered_models.for_run(pipeline_run["cfg"].name)["model"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{result['registered_versions']['model']}")
    runtime = OnnxAutoencoder(result["export_dir"])
    batch = np.random.default_rng(1).random((3, *runtime.input_shape), dtype=np.float32)
    predicted = pyfunc.predict(batch)
    values = next(iter(predicted.values())) if isinstance(predicted, dict) else np.asarray(predicted)
    np.testing.assert_allclose(
        np.asarray(values).reshape(3, -1), runtime.reconstruct(batch).reshape(3, -1), atol=1e-5
    )


@pytest.mark.slow
def test_prefect_summary_artifact_lists_the_metrics(pipeline_run: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["smoke-summary"]))
        )
    assert artifacts, "the flow did not publish its summary artifact"
    markdown = str(artifacts[0].data)
    assert pipeline_run["result"]["run_id"] in markdown
    assert f"{pipeline_run['result']['metrics']['test_psnr']:.2f}" in markdown


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_unreachable_tracking_server_fails_before_training(tmp_path: Path, prefect_harness: None) -> None:
    cfg = tiny_config(tmp_path, "train.epochs=50")
    settings = MlflowSettings(tracking_uri=f"http://127.0.0.1:{_free_port()}", experiment_name="x")
    started = time.perf_counter()
    with pytest.raises(TrackingUnavailableError, match="not reachable"):
        train_autoencoder(cfg, settings)
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "checkpoints").exists(), "training started although MLflow was unreachable"
