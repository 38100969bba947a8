"""`aeflow run` under faults, as a user meets them: a real subprocess, killed or pointed at nothing.

- SIGKILL mid-training, then the same command again: it resumes from the last checkpoint and ends
  with the metrics of an uninterrupted run with the same seed.
- an MLflow URL where nothing listens: one clear error within seconds, before any training.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.servers.processes import AEFLOW, CHECKOUT_ENV, free_port, mlflow_config

EPOCHS = 12
# Full digits at 28×28: about a second per epoch on one thread, so the kill lands mid-run.
RESUMABLE = (
    "--set", "data.limit=null", "--set", "data.image_size=28", "--set", "model.channels=[16, 8, 8]",
    "--set", f"train.epochs={EPOCHS}", "--set", "train.num_threads=1", "--set", "train.progress=false",
    "--set", "eval.baselines=false",
)  # fmt: skip
# Measured: the resumed run's logged metrics equal the uninterrupted run's exactly (CPU, one thread).
TOLERANCE = 1e-6


def _env(root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **CHECKOUT_ENV,
        "AEFLOW_MLFLOW_CONFIG": str(mlflow_config(root, f"sqlite:///{root / 'mlflow.db'}")),
        "PREFECT_HOME": str(root / "prefect"),
        **extra,
    }


def _run_args(root: Path, name: str) -> list[str]:
    return [
        *AEFLOW, "run", "--preset", "smoke", *RESUMABLE,
        "--set", f"name={name}",
        "--set", f"data.cache_dir={root / 'cache'}",
        "--set", f"train.checkpoint_dir={root / 'checkpoints'}",
        "--set", f"export.dir={root / 'exported'}",
    ]  # fmt: skip


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


@pytest.mark.slow
def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    env = _env(tmp_path)
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("reference", "killed", "resumed")}
    # The reference runs alongside the run that gets killed: one thread each, so the numbers are unaffected.
    reference = subprocess.Popen(
        _run_args(tmp_path, "reference"),
        env=env,
        cwd=tmp_path,
        stdout=logs["reference"],
        stderr=subprocess.STDOUT,
    )
    victim = subprocess.Popen(
        _run_args(tmp_path, "victim"), env=env, cwd=tmp_path, stdout=logs["killed"], stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    checkpoint = tmp_path / "checkpoints" / "victim" / "last.pt"
    deadline = time.monotonic() + 400
    while _checkpoint_epoch(checkpoint) < 2:
        assert victim.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.1)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(30)
    stopped_at = _checkpoint_epoch(checkpoint)
    assert 2 <= stopped_at < EPOCHS, "the run was not killed mid-training"

    resumed = subprocess.run(
        _run_args(tmp_path, "victim"), env=env, cwd=tmp_path, stdout=logs["resumed"],
        stderr=subprocess.STDOUT, timeout=600, check=False,
    )  # fmt: skip
    assert reference.wait(600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    for log in logs.values():
        log.close()
    text = (tmp_path / "resumed.log").read_text()
    assert resumed.returncode == 0, text[-3000:]
    assert f"resumed from epoch {stopped_at} of {EPOCHS}" in text

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("aeflow").experiment_id], "attributes.status = 'FINISHED'"
    )
    by_name = {run.info.run_name: run for run in runs}
    ref, new = by_name["reference"], by_name["victim"]
    assert new.data.tags["aeflow.resumed_from_epoch"] == str(stopped_at)
    history = client.get_metric_history(new.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == list(
        range(1, EPOCHS + 1)
    )  # every epoch once, restored ones too
    for key in ("test_psnr", "test_ssim", "test_mse", "val_loss", "train_loss"):
        assert abs(new.data.metrics[key] - ref.data.metrics[key]) <= TOLERANCE, key


@pytest.mark.parametrize("source", ["env", "mlflow.yml"])
def test_unreachable_mlflow_fails_fast_before_training(tmp_path: Path, source: str) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path)
    if source == "env":
        env["MLFLOW_TRACKING_URI"] = uri
    else:
        env["AEFLOW_MLFLOW_CONFIG"] = str(mlflow_config(tmp_path, uri))
    started = time.monotonic()
    proc = subprocess.run(
        _run_args(tmp_path, "unreachable"), env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    message = proc.stderr
    assert f"MLflow tracking server {uri}" in message and "not reachable" in message
    assert ("MLFLOW_TRACKING_URI" if source == "env" else "mlflow.yml") in message
    assert "aeflow server" in message and "Nothing was trained" in message
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not re.search(r"epoch \d+/", proc.stdout + proc.stderr)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "exported").exists()
    assert elapsed < 60, f"took {elapsed:.0f} s to give up"
