"""The pipeline against a real `mlflow server` over HTTP: runs, artifacts, versions, the champion alias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.pipeline import train_autoencoder
from flows.settings import MlflowSettings
from tests.flows.conftest import tiny_config

pytestmark = pytest.mark.slow
NAME = "registry-test"


def _settings(uri: str) -> MlflowSettings:
    return MlflowSettings(tracking_uri=uri, experiment_name="server-tests")


def _train(root: Path, uri: str, *overrides: str) -> dict[str, Any]:
    return train_autoencoder(tiny_config(root, f"name={NAME}", *overrides), _settings(uri))


@pytest.fixture(scope="module")
def runs(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict[str, Any]:
    """Champion, then a clearly worse challenger (1 epoch at a tiny learning rate), then a better one."""
    root = tmp_path_factory.mktemp("registry")
    first = _train(root, mlflow_uri)
    worse = _train(root, mlflow_uri, "train.epochs=1", "train.lr=1e-5")
    better = _train(root, mlflow_uri, "train.epochs=30", "train.lr=3e-3")
    return {
        "first": first,
        "worse": worse,
        "better": better,
        "client": MlflowClient(mlflow_uri, registry_uri=mlflow_uri),
    }


def test_runs_metrics_and_artifacts_live_on_the_server(runs: dict[str, Any], mlflow_uri: str) -> None:
    client: MlflowClient = runs["client"]
    run = client.get_run(runs["first"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri  # proxied over HTTP
    assert run.data.metrics["test_psnr"] == pytest.approx(runs["first"]["metrics"]["test_psnr"])
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/reconstructions.png" in figures
    for role, version in runs["first"]["registered_versions"].items():
        registered = client.get_model_version(f"{NAME}-{role}" if role != "model" else NAME, version)
        assert registered.run_id == run.info.run_id


def test_worse_challenger_keeps_the_alias_and_better_one_takes_it(runs: dict[str, Any]) -> None:
    client: MlflowClient = runs["client"]
    first, worse, better = runs["first"]["champion"], runs["worse"]["champion"], runs["better"]["champion"]
    assert first["promoted"] and first["incumbent_version"] is None
    assert not worse["promoted"]
    assert worse["challenger_score"] < worse["incumbent_score"]
    # The incumbent was re-scored on this run's evaluation set and matches its own logged score.
    assert worse["incumbent_score"] == pytest.approx(runs["first"]["metrics"]["test_psnr"], abs=1e-3)
    assert better["promoted"] and better["challenger_score"] > better["incumbent_score"]
    for role, name in (("model", NAME), ("encoder", f"{NAME}-encoder"), ("decoder", f"{NAME}-decoder")):
        holder = client.get_model_version_by_alias(name, "champion")
        assert holder.version == runs["better"]["registered_versions"][role]
    run = client.get_run(runs["worse"]["run_id"])
    assert run.data.tags["aeflow.champion.decision"] == "kept"
    assert run.data.metrics["champion_incumbent_test_psnr"] == pytest.approx(worse["incumbent_score"])


def test_models_cli_lists_rolls_back_and_promotes(
    runs: dict[str, Any], mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    client: MlflowClient = runs["client"]
    cli = CliRunner()
    listing = cli.invoke(app, ["models", "list"])
    assert listing.exit_code == 0, listing.output
    line = next(row for row in listing.output.splitlines() if row.startswith(f"{NAME} "))
    assert runs["better"]["registered_versions"]["model"] in line.split()

    back = cli.invoke(app, ["models", "rollback", NAME])
    assert back.exit_code == 0, back.output
    first = runs["first"]["registered_versions"]
    assert client.get_model_version_by_alias(f"{NAME}-decoder", "champion").version == first["decoder"]
    assert client.get_model_version_by_alias(NAME, "champion").version == first["model"]

    worse = runs["worse"]["registered_versions"]
    moved = cli.invoke(app, ["models", "promote", NAME, worse["model"]])
    assert moved.exit_code == 0, moved.output
    assert client.get_model_version_by_alias(f"{NAME}-encoder", "champion").version == worse["encoder"]

    missing = cli.invoke(app, ["models", "promote", NAME, "999"])
    assert missing.exit_code == 2 and "no version 999" in missing.output
