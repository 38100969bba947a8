"""Epoch metrics are sent in batches but none is lost, and each keeps its epoch as its step."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from components.config import RunConfig
from components.training import EpochReport
from flows.settings import MlflowSettings
from flows.tracking import EpochLog, Tracker


def _report(epoch: int, epochs: int) -> EpochReport:
    return EpochReport(epoch, epochs, 1.0 / epoch, 2.0 / epoch, 0.5, 100.0, {"kl": float(epoch)})


def test_batched_epochs_all_arrive_with_their_steps(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(MlflowSettings(tracking_uri=uri, artifact_location=str(tmp_path / "art")))
    run_id = tracker.start_run(RunConfig(name="epoch-log"))
    log = EpochLog(tracker, run_id, every_s=3600.0)
    flushed = [log.add(_report(epoch, 5)) for epoch in range(1, 6)]
    assert flushed == [False, False, False, False, True]  # only the last epoch forces a send

    client = MlflowClient(uri, registry_uri=uri)
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(e, round(1.0 / e, 4)) for e in range(1, 6)]
    assert [m.value for m in client.get_metric_history(run_id, "train_kl")] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_flush_sends_what_a_failed_run_had(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(MlflowSettings(tracking_uri=uri, artifact_location=str(tmp_path / "art")))
    run_id = tracker.start_run(RunConfig(name="epoch-log-failed"))
    log = EpochLog(tracker, run_id, every_s=3600.0)
    log.add(_report(1, 10))
    log.add(_report(2, 10))
    client = MlflowClient(uri, registry_uri=uri)
    assert client.get_metric_history(run_id, "val_loss") == []
    log.flush()
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2]
