"""A failure mid-training is retried by Prefect and resumes from the checkpoint, not from epoch 1.

The failure is a real exception from a real per-epoch hook (flows.epoch_hooks), raised once after
epoch 2 was checkpointed and logged; the flow runs under a real Prefect API with MLflow on SQLite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from components.training import EpochReport
from flows.epoch_hooks import epoch_hook
from flows.pipeline import train_autoencoder
from tests.flows.conftest import sqlite_settings, tiny_config

pytestmark = pytest.mark.slow
EPOCHS, FAIL_AFTER = 4, 2


class LostConnection(ConnectionError):
    """What a notification hook might raise when its server drops the connection."""


def _read_train_task_runs(flow_run_id: str) -> list[object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    with get_client(sync_client=True) as client:
        return list(
            client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="train")),
            )
        )


def test_failed_train_task_is_retried_and_resumes_from_its_checkpoint(
    tmp_path: Path, prefect_harness: None
) -> None:
    seen: list[int] = []

    def fail_once(report: EpochReport) -> None:
        seen.append(report.epoch)
        if report.epoch == FAIL_AFTER and seen.count(FAIL_AFTER) == 1:
            raise LostConnection(f"notification server went away after epoch {report.epoch}")

    cfg = tiny_config(tmp_path, f"train.epochs={EPOCHS}", "train.retries=1")
    settings = sqlite_settings(tmp_path)
    with epoch_hook(fail_once):
        result = train_autoencoder(cfg, settings)

    assert seen == list(range(1, EPOCHS + 1)), f"the retry trained epochs {seen}, not {FAIL_AFTER + 1}.."
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["aeflow.resumed_from_epoch"] == str(FAIL_AFTER)
    for key in ("train_loss", "val_loss"):  # one value per epoch: the retry logged nothing twice
        assert sorted(m.step for m in client.get_metric_history(result["run_id"], key)) == list(
            range(1, EPOCHS + 1)
        )

    flow_run_id = run.data.tags["prefect.flow_run_id"]
    [train_run] = [t for t in _read_train_task_runs(flow_run_id) if t.name.startswith("train")]  # type: ignore[attr-defined]
    assert train_run.run_count == 2 and train_run.state_name == "Completed"  # type: ignore[attr-defined]
