"""Where a sweep's cells run: Prefect's thread pool in this process, or a Dask cluster.

The cells are tasks (each calls the `train-autoencoder` flow), so any Prefect task runner can
carry them; in Prefect 3 only tasks go through a task runner, never subflows. `prefect-dask`'s
DaskTaskRunner either starts a temporary LocalCluster with one worker per concurrent cell or
connects to a running scheduler (for example one started by dask-kubernetes). It is imported only
when asked for, so a plain install without the `scale` extra still runs thread sweeps.
"""

from __future__ import annotations

from typing import Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from components.presets import ConfigError

RunnerName = Literal["threads", "dask"]


class DaskSettings(BaseModel):
    """A temporary LocalCluster (the default) or the address of a running Dask scheduler."""

    model_config = ConfigDict(extra="forbid")
    address: str | None = Field(
        None, description="Scheduler address (tcp://host:8786); None starts a LocalCluster for the sweep."
    )
    processes: bool = Field(
        True, description="LocalCluster workers are processes (True) or threads of the sweep's process."
    )
    threads_per_worker: int = Field(1, ge=1, description="Cells one LocalCluster worker runs at once.")


def cell_task_runner(runner: RunnerName, dask: DaskSettings, max_concurrent: int) -> TaskRunner:
    """The task runner for the cells; `max_concurrent` also sizes the LocalCluster."""
    if runner == "threads":
        return ThreadPoolTaskRunner(max_workers=max_concurrent)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "runner dask needs prefect-dask: pip install -e '.[scale]' (or pip install prefect-dask)"
        ) from None
    if dask.address:
        return DaskTaskRunner(address=dask.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": max_concurrent,
            "threads_per_worker": dask.threads_per_worker,
            "processes": dask.processes,
            "dashboard_address": None,  # no web dashboard (it would need bokeh and a free port)
        }
    )
