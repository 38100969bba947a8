"""The real flow for a conditional VAE: likelihoods, latent pictures and a labelled encoder in MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient

from components.runtime import InputError, OnnxAutoencoder
from flows.pipeline import train_autoencoder
from tests.flows.conftest import sqlite_settings, tiny_config

EPOCHS = 2
CVAE = (
    "name=kinds-cvae",
    "model.kind=cvae",
    "model.architecture=fc",
    "model.latent_dim=2",
    "model.hidden=[32]",
    "corruption.kind=none",
    f"train.epochs={EPOCHS}",
    "train.device=cpu",
    "train.num_threads=1",
    "data.name=digits",
    "data.image_size=16",
    "data.limit=200",
    "eval.iwae_k=16",
)
FIGURES = {
    "samples.png",
    "latent_scatter.png",
    "latent_traversal.png",
    "perturbed.png",
    "interpolation.png",
    "reconstructions.png",
    "loss_curves.png",
}


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("pipeline-cvae")
    cfg = tiny_config(root, *CVAE)
    settings = sqlite_settings(root, experiment="kinds")
    with threadpool_limits(limits=1):  # one BLAS thread: the PCA baseline crawls on shared cores otherwise
        result = train_autoencoder(cfg, settings)
    return {"root": root, "cfg": cfg, "settings": settings, "result": result}


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 16, 16), dtype=np.float32)


@pytest.mark.slow
def test_cvae_run_logs_likelihoods_history_and_pictures(cvae_run: dict) -> None:
    result = cvae_run["result"]
    client = MlflowClient(cvae_run["settings"].tracking_uri, registry_uri=cvae_run["settings"].tracking_uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.kind"] == "cvae"
    for key in ("vae_elbo", "vae_iwae_nll", "vae_active_units", "knn_accuracy_codes", "knn_accuracy_pixels"):
        assert key in run.data.metrics, f"{key} was not logged"
        assert np.isfinite(run.data.metrics[key])
    assert run.data.metrics["vae_iwae_nll"] <= -run.data.metrics["vae_elbo"]
    history = client.get_metric_history(result["run_id"], "train_kl")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert all(m.value > 0 for m in history)
    figures = {Path(a.path).name for a in client.list_artifacts(result["run_id"], "figures")}
    assert figures == FIGURES


@pytest.mark.slow
def test_registered_encoder_takes_images_and_labels_and_returns_the_posterior(cvae_run: dict) -> None:
    result, settings = cvae_run["result"], cvae_run["settings"]
    name = settings.registered_models.for_run(cvae_run["cfg"].name)["encoder"]
    version = result["registered_versions"]["encoder"]
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    assert client.get_model_version(name, version).run_id == result["run_id"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")

    images = _images(5)
    labels = np.array([0, 3, 7, 9, 3], dtype=np.int64)
    predicted = pyfunc.predict({"images": images, "labels": labels})
    assert isinstance(predicted, dict) and set(predicted) == {"mean", "log_var"}
    session = ort.InferenceSession(
        str(Path(result["export_dir"]) / "encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    mean, log_var = session.run(["mean", "log_var"], {"images": images, "labels": labels})
    assert mean.shape == log_var.shape == (5, 2)
    np.testing.assert_allclose(np.asarray(predicted["mean"]), mean, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(predicted["log_var"]), log_var, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_runtime_needs_labels_for_the_conditional_export(cvae_run: dict) -> None:
    runtime = OnnxAutoencoder(cvae_run["result"]["export_dir"], intra_op_threads=1)
    assert runtime.manifest["conditional"] and runtime.manifest["num_classes"] == 10
    images, labels = _images(4, seed=1), np.array([1, 2, 3, 4])
    posterior = runtime.posterior(images, labels)
    assert len(posterior) == 2
    mean, log_var = posterior
    assert mean.shape == log_var.shape == (4, 2)
    np.testing.assert_allclose(runtime.encode(images, labels), mean, atol=1e-6)

    decoded = runtime.decode(mean, labels)
    assert decoded.shape == (4, 1, 16, 16)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0
    relabelled = runtime.decode(mean, (labels + 5) % 10)
    assert np.abs(decoded - relabelled).max() > 1e-3, "the decoder ignores the labels"
    np.testing.assert_allclose(runtime.reconstruct(images, labels), decoded, atol=1e-5)

    with pytest.raises(InputError, match="label"):
        runtime.decode(mean)
    with pytest.raises(InputError, match="label"):
        runtime.posterior(images)
    with pytest.raises(InputError, match="label"):
        runtime.reconstruct(images)
    with pytest.raises(InputError, match="labels"):
        runtime.decode(mean, labels[:3])
