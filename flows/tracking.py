"""MLflow glue: one run per pipeline run, logged through `MlflowClient` with an explicit run id.

MLflow keeps its "active run" per thread and Prefect runs each task in a worker thread, so the
tasks never rely on `mlflow.active_run()`: they get the run id and log through the client.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from components.config import RunConfig
from components.training import EpochReport
from flows.settings import MlflowSettings, settings_file
from flows.sqlite_store import initialise_sqlite


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server cannot be reached; raised before any training starts."""


def _graph_examples(folder: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """A batch of 2 for every graph input: images at the manifest's size (fully convolutional
    graphs leave height and width open), labels, and the codes the encoder makes of those images."""
    rng = np.random.default_rng(0)
    images = rng.random((2, *manifest["input"]["shape"]), dtype=np.float32)
    labels = rng.integers(0, max(manifest.get("num_classes", 1), 1), size=2, dtype=np.int64)
    feeds = {"images": images, **({"labels": labels} if manifest.get("conditional") else {})}
    encoder = ort.InferenceSession(
        str(folder / manifest["graphs"]["encoder"]["file"]), providers=["CPUExecutionProvider"]
    )
    code = encoder.run(None, feeds)[0]
    return {**feeds, "code": code.astype(np.float32)}


def _signature(spec: dict[str, Any], inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Any:
    """Tensor specs with -1 wherever the graph's axis is symbolic (batch; H and W of fcn models)."""

    def schema(items: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> Schema:
        return Schema(
            [
                TensorSpec(
                    arrays[item["name"]].dtype,
                    tuple(d if isinstance(d, int) else -1 for d in item["shape"]),
                    item["name"],
                )
                for item in items
            ]
        )

    return ModelSignature(schema(spec["inputs"], inputs), schema(spec["outputs"], outputs))


_ONNX_REQUIREMENTS = [f"{p}=={metadata.version(p)}" for p in ("onnx", "onnxruntime", "numpy")]


def epoch_metrics(report: EpochReport) -> list[Metric]:
    now = int(time.time() * 1000)
    values = {
        "train_loss": report.train_loss,
        "val_loss": report.val_loss,
        "epoch_seconds": report.seconds,
        "train_images_per_second": report.images_per_second,
        **{f"train_{name}": value for name, value in report.terms.items()},
    }
    return [Metric(key, float(v), now, report.epoch) for key, v in values.items()]


class EpochLog:
    """Sends epoch metrics in batches, at most every `every_s` seconds, and always the last epoch.

    A `log_batch` per epoch (SQLite commit, or an HTTP round trip) and a Prefect log line per
    epoch took CPU from the training threads on a small machine; the curves are the same.
    """

    def __init__(self, tracker: Tracker, run_id: str, every_s: float = 10.0) -> None:
        self.tracker, self.run_id, self.every_s = tracker, run_id, every_s
        self.pending: list[EpochReport] = []
        self.last_flush = time.monotonic()

    def add(self, report: EpochReport) -> bool:
        """Queue `report`; returns True when it flushed (a good moment to print progress too)."""
        self.pending.append(report)
        if report.epoch < report.epochs and time.monotonic() - self.last_flush < self.every_s:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        if self.pending:
            self.tracker.log_epochs(self.run_id, self.pending)
            self.pending = []
        self.last_flush = time.monotonic()


class Tracker:
    def __init__(self, settings: MlflowSettings) -> None:
        self.settings = settings
        uri = settings.tracking_uri
        if uri.startswith("sqlite:///"):
            initialise_sqlite(Path(uri.removeprefix("sqlite:///")), uri)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def check_reachable(self, timeout_s: float = 5.0) -> None:
        """Fail in seconds, not after training: probe an HTTP server's /health endpoint once.

        A plain HTTP probe, not an MLflow call: MLflow's client retries with exponential backoff
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES), which would turn a typo in the URL into minutes of waiting.
        """
        uri = self.settings.tracking_uri
        if not uri.startswith(("http://", "https://")):
            return
        source = (
            "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") == uri else f"{settings_file()}"
        )
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            status = err.code
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} (set by {source}) is not reachable: {reason}. Nothing was "
                "trained. Start the servers with `aeflow server` (MLflow on http://127.0.0.1:5000), point "
                f"{source} at a running server, or unset MLFLOW_TRACKING_URI and use tracking_uri: "
                "sqlite:///mlflow.db in mlflow.yml to log to a local file."
            ) from None
        if status != 200:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} (set by {source}) answered /health with HTTP {status}; "
                "is it an MLflow server? Nothing was trained."
            )

    def experiment_id(self) -> str:
        """The configured experiment, created on first use (a concurrent creator may win the race)."""
        name = self.settings.experiment_name
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        try:
            # A tracking server stores artifacts itself (proxied over HTTP); a local database
            # needs an explicit folder, or MLflow would write ./mlruns wherever we happen to be.
            location = None if self.settings.is_remote else self.settings.artifact_location
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def start_run(
        self, cfg: RunConfig, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> str:
        tags = dict(tags or {})
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # shown nested under the parent in the UI
        run = self.client.create_run(self.experiment_id(), run_name=cfg.name, tags=tags)
        params = [Param(key, value[:6000]) for key, value in cfg.flat().items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        return str(run.info.run_id)

    def start_named_run(self, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        """A run that is not one training (a sweep's parent run)."""
        run = self.client.create_run(self.experiment_id(), run_name=name, tags=tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        return str(run.info.run_id)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_epochs(self, run_id: str, reports: list[EpochReport]) -> None:
        """One `log_batch` for several epochs, each metric at step = its epoch."""
        metrics = [metric for report in reports for metric in epoch_metrics(report)]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics per batch
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        """The steps at which `key` is already logged in this run (a retried task must not log them twice)."""
        return {metric.step for metric in self.client.get_metric_history(run_id, key)}

    def log_metrics(self, run_id: str, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_onnx_models(
        self, run_id: str, folder: Path, manifest: dict[str, Any], name: str
    ) -> dict[str, str]:
        """Log each graph with the `mlflow.onnx` flavour and register it; returns role → version."""
        names = self.settings.registered_models.for_run(name)
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)
        versions: dict[str, str] = {}
        examples = _graph_examples(folder, manifest)
        with mlflow.start_run(run_id=run_id):
            for role, spec in manifest["graphs"].items():
                path = folder / spec["file"]
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                example = {item["name"]: examples[item["name"]] for item in spec["inputs"]}
                outputs = dict(
                    zip([o["name"] for o in spec["outputs"]], session.run(None, example), strict=True)
                )
                single = len(example) == 1 and len(outputs) == 1
                info = mlflow.onnx.log_model(
                    onnx.load(str(path)),
                    name=role,
                    signature=_signature(spec, example, outputs),
                    input_example=next(iter(example.values())) if single else example,
                    registered_model_name=names[role],
                    save_as_external_data=False,
                    onnx_execution_providers=["CPUExecutionProvider"],
                    # Named, not inferred: inference imports the model in a subprocess (4–6 s per graph).
                    pip_requirements=_ONNX_REQUIREMENTS,
                    # The manifest travels with every graph, so `models:/<name>@<alias>` alone is enough
                    # to rebuild the export folder (shapes, kind, hashes) from the registry.
                    extra_files=[str(folder / "manifest.json")],
                )
                versions[role] = str(info.registered_model_version)
        return versions

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.from_string(status)))

    def ui_command(self) -> str:
        return (
            f"mlflow ui --backend-store-uri {self.settings.tracking_uri} "
            f"--default-artifact-root {self.settings.artifact_location}"
        )
