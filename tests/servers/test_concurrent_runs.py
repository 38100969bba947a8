"""Two `aeflow run` processes at once against one SQLite-backed MLflow: both runs complete."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.servers.processes import AEFLOW, CHECKOUT_ENV, mlflow_config

pytestmark = pytest.mark.slow


def test_two_training_flows_at_once_both_complete(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processes = []
    for i in range(2):
        env = {
            **os.environ,
            **CHECKOUT_ENV,
            "AEFLOW_MLFLOW_CONFIG": str(mlflow_config(tmp_path, db)),
            "PREFECT_HOME": str(tmp_path / f"prefect-{i}"),
            # Each process starts its own ephemeral Prefect server; give it time on a loaded machine.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        }
        args = [
            *AEFLOW, "run", "--preset", "smoke",
            "--set", f"name=concurrent-{i}",
            "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
            "--set", f"export.dir={tmp_path / 'exported'}",
            "--set", "train.progress=false",
        ]  # fmt: skip
        log = (tmp_path / f"run-{i}.log").open("w")
        processes.append((subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=log), log))
    for process, log in processes:
        process.wait(600)
        log.close()
    logs = [(tmp_path / f"run-{i}.log").read_text() for i in range(2)]
    for (process, _), text in zip(processes, logs, strict=True):
        assert process.returncode == 0, text[-3000:]
        assert "database is locked" not in text

    client = MlflowClient(db, registry_uri=db)
    runs = client.search_runs([client.get_experiment_by_name("aeflow").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["concurrent-0", "concurrent-1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_psnr", "test_mse", "val_loss"} <= set(run.data.metrics)
        assert client.get_model_version_by_alias(run.info.run_name, "champion").run_id == run.info.run_id
