"""A sweep whose cells run on a real local Dask cluster (2 worker processes) through prefect-dask."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from mlflow.tracking import MlflowClient
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.sweep import SweepConfig
from flows.sweep_runners import DaskSettings, cell_task_runner
from tests.flows.conftest import sqlite_settings

ROOT = Path(__file__).resolve().parents[2]


def test_runner_choice_follows_the_sweep_config() -> None:
    threads = cell_task_runner("threads", DaskSettings(), 3)
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    local = cell_task_runner("dask", DaskSettings(processes=False), 3)
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"] is False
    remote = cell_task_runner("dask", DaskSettings(address="tcp://10.0.0.5:8786"), 3)
    assert remote.address == "tcp://10.0.0.5:8786" and not remote.cluster_kwargs
    assert (
        SweepConfig.model_validate({"runner": "dask", "dask": {"processes": False}}).dask.processes is False
    )


@pytest.fixture
def dask_cluster() -> Iterator[LocalCluster]:
    """Two single-threaded worker processes, as a cluster started outside the sweep would be."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
def test_sweep_cells_run_on_dask_workers_and_land_in_mlflow(
    tmp_path: Path, prefect_harness: None, dask_cluster: LocalCluster
) -> None:
    from flows.sweep import comparison_sweep

    sweep = SweepConfig.model_validate(
        {
            "name": "dask",
            "preset": "smoke",
            "overrides": [
                f"data.cache_dir={tmp_path / 'cache'}",
                f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
                f"export.dir={tmp_path / 'exported'}",
                "train.progress=false",
                "train.epochs=1",
                "eval.baselines=false",
            ],
            "grid": {"kinds": ["ae"], "latent_dims": [None, 4], "corruptions": [{"kind": "none"}]},
            "max_concurrent": 2,
            "runner": "dask",
            "dask": {"address": dask_cluster.scheduler_address},
        }
    )
    settings = sqlite_settings(tmp_path)
    result = comparison_sweep(sweep, settings)
    assert result["failed"] == 0, result["ranking"]

    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    parent = client.get_run(result["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == ["dask-ae-l4-none", "dask-ae-spatial-none"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"test_psnr", "test_mse", "train_loss"} <= set(child.data.metrics)

    # Both cells went through the cluster's scheduler and ran on its workers.
    with Client(dask_cluster.scheduler_address) as dask:
        done = dask.run_on_scheduler(
            lambda dask_scheduler: {
                prefix: dict(p.state_counts) for prefix, p in dask_scheduler.task_prefixes.items()
            }
        )
    assert sum(counts.get("memory", 0) + counts.get("released", 0) for counts in done.values()) >= 2, done


def test_cli_runner_option_is_validated_before_anything_runs() -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["sweep", str(ROOT / "sweeps" / "digits-grid.yaml"), "--runner", "ray"])
    assert result.exit_code == 2
    assert "--runner" in result.output and "threads" in result.output
