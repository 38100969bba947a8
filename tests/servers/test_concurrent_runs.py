"""Four `aeflow run` processes at once, sharing one Prefect home and one SQLite-backed MLflow.

This is four terminals in one project folder: no Prefect server, so each process starts its own
temporary API server on the same `prefect.db` (Prefect's SQLite is in WAL mode with a long busy
timeout), and all four log to one `mlflow.db`, which `flows.sqlite_store` puts in WAL mode so
that one run's reads never block another's commits. All four must finish with all their metrics
and registered models, and no process may log "database is locked".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.sqlite_store import journal_mode
from tests.servers.processes import AEFLOW, CHECKOUT_ENV, mlflow_config

pytestmark = pytest.mark.slow
RUNS = 4


def test_four_training_flows_at_once_all_complete(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    env = {
        **os.environ,
        **CHECKOUT_ENV,
        "AEFLOW_MLFLOW_CONFIG": str(mlflow_config(tmp_path, f"sqlite:///{db}")),
        "PREFECT_HOME": str(tmp_path / "prefect"),  # one home for all four
        # Four temporary servers start at once on two busy cores: give them time.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }
    processes = []
    for i in range(RUNS):
        args = [
            *AEFLOW, "run", "--preset", "smoke",
            "--set", f"name=concurrent-{i}",
            "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
            "--set", f"export.dir={tmp_path / 'exported'}",
            "--set", "train.progress=false",
            "--set", "eval.baselines=false",
        ]  # fmt: skip
        log = (tmp_path / f"run-{i}.log").open("w")
        processes.append((subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=log), log))
    for process, log in processes:
        process.wait(900)
        log.close()
    logs = [(tmp_path / f"run-{i}.log").read_text() for i in range(RUNS)]
    for (process, _), text in zip(processes, logs, strict=True):
        assert process.returncode == 0, text[-3000:]
        assert "database is locked" not in text, text[-3000:]

    assert journal_mode(db) == "wal"
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri, registry_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("aeflow").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"concurrent-{i}" for i in range(RUNS)]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_psnr", "test_mse", "test_ssim", "val_loss", "train_seconds"} <= set(run.data.metrics)
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss"))
        assert steps == [1, 2]  # the smoke preset's two epochs, each logged once
        assert client.get_model_version_by_alias(run.info.run_name, "champion").run_id == run.info.run_id
