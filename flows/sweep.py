"""Comparison sweeps: a grid of model kind × latent size × corruption, one subflow per cell.

Each cell is the ordinary `train-autoencoder` flow, so every cell is a complete, registered,
comparable run. In MLflow the cells are child runs of one parent run (the UI nests them and its
compare view lines up their metrics, which all share the same names); the parent holds the
ranking. At most `max_concurrent` cells train at once.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.config import CorruptionConfig, ModelKind
from components.presets import ConfigError, load_config
from flows.settings import MlflowSettings, load_mlflow_settings
from flows.sweep_runners import DaskSettings, RunnerName, cell_task_runner
from flows.tracking import Tracker

RankMetric = Literal["test_psnr", "test_ssim", "test_mse"]


class SweepGrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: list[ModelKind] = Field(default_factory=lambda: ["ae"], min_length=1)
    latent_dims: list[int | None] = Field(
        default_factory=lambda: [None], min_length=1, description="None keeps the conv feature map."
    )
    corruptions: list[CorruptionConfig] = Field(default_factory=lambda: [CorruptionConfig()], min_length=1)


class SweepConfig(BaseModel):
    """A sweep: a base preset with overrides, and the grid laid over it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    preset: str = "smoke"
    overrides: list[str] = Field(default_factory=list, description="`--set`-style, for every cell.")
    grid: SweepGrid = Field(default_factory=SweepGrid)
    max_concurrent: int = Field(2, ge=1, le=16)
    rank_by: RankMetric = "test_psnr"
    runner: RunnerName = Field(
        "threads", description="threads: in this process; dask: on a Dask cluster (prefect-dask)."
    )
    dask: DaskSettings = Field(default_factory=DaskSettings)


def load_sweep(path: Path) -> SweepConfig:
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return SweepConfig.model_validate(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from None
    except ValidationError as err:
        problems = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid sweep file {path}:\n{problems}") from None


def _corruption_label(corruption: CorruptionConfig) -> str:
    changed = corruption.model_dump(exclude_defaults=True, exclude={"kind"})
    return "-".join([corruption.kind, *(f"{k}{v}" for k, v in sorted(changed.items()))])


def expand(sweep: SweepConfig) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """(label, RunConfig) for every valid cell, and (label, why) for the combinations that are not."""
    cells, skipped = [], []
    grid = sweep.grid
    for kind, latent, corruption in itertools.product(grid.kinds, grid.latent_dims, grid.corruptions):
        label = f"{kind}-{'spatial' if latent is None else f'l{latent}'}-{_corruption_label(corruption)}"
        overrides = [
            *sweep.overrides,
            f"name={sweep.name}-{label}",
            f"model.kind={kind}",
            f"model.latent_dim={'null' if latent is None else latent}",
            *(f"corruption.{key}={value}" for key, value in corruption.model_dump(mode="json").items()),
        ]
        try:
            cells.append((label, load_config(sweep.preset, overrides=overrides)))
        except ConfigError as err:
            skipped.append((label, str(err).replace("\n", " ")))
    return cells, skipped


@task(name="sweep-cell", cache_policy=NO_CACHE)
def run_cell(config: Any, settings: MlflowSettings, parent_run_id: str) -> dict[str, Any]:
    # Imported where the cell runs: a Dask worker unpickles this function by value, and the flow
    # object it would carry along loses the module globals (RunConfig) its annotations name.
    from flows.pipeline import train_autoencoder

    return train_autoencoder(config, settings, parent_run_id=parent_run_id)


@flow(name="sweep-cells")
def train_cells(
    configs: list[Any], settings: MlflowSettings, parent_run_id: str, max_concurrent: int
) -> list[dict[str, Any] | BaseException]:
    """Submit the cells to this flow's task runner (chosen per sweep), at most `max_concurrent` at once.

    A subflow of its own because a flow's task runner is fixed when it starts: the sweep's flow
    reads `runner` from its parameters and starts this one with the runner it names.
    """
    futures: dict[PrefectFuture[dict[str, Any]], int] = {}
    outcomes: list[dict[str, Any] | BaseException] = [RuntimeError("not run")] * len(configs)

    def collect(future: PrefectFuture[dict[str, Any]]) -> None:
        try:
            outcomes[futures.pop(future)] = future.result()
        except Exception as err:  # a failed cell is a row of the ranking, not the end of the sweep
            outcomes[futures.pop(future)] = err

    for index, config in enumerate(configs):
        while len(futures) >= max_concurrent:
            collect(next(as_completed(list(futures))))
        futures[run_cell.submit(config, settings, parent_run_id)] = index
    while futures:
        collect(next(as_completed(list(futures))))
    return outcomes


def _ranking(
    labels: list[str], outcomes: list[dict[str, Any] | BaseException], rank_by: RankMetric
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, outcome in zip(labels, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # One line, no terminal colours: the status is a cell of a Markdown table.
            first = re.sub(r"\x1b\[[0-9;]*m", "", str(outcome)).strip().splitlines() or [""]
            rows.append({"cell": label, "status": f"failed: {type(outcome).__name__}: {first[0][:200]}"})
            continue
        m = outcome["metrics"]
        rows.append(
            {
                "cell": label,
                "status": "ok",
                rank_by: round(m[rank_by], 5),
                **{k: round(m[k], 5) for k in ("test_mse", "test_psnr", "test_ssim", "baseline_psnr")},
                "train_seconds": round(outcome["train_seconds"], 1),
                "run_id": outcome["run_id"],
            }
        )
    best_first = -1.0 if rank_by != "test_mse" else 1.0
    rows.sort(key=lambda r: (r["status"] != "ok", best_first * r.get(rank_by, 0.0)))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank if row["status"] == "ok" else "-"
    return rows


def ranking_markdown(rows: list[dict[str, Any]], rank_by: str) -> str:
    columns = ["rank", "cell", rank_by, "test_mse", "test_ssim", "baseline_psnr", "train_seconds", "status"]
    columns = list(dict.fromkeys(columns))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


@flow(name="comparison-sweep", log_prints=True)
def comparison_sweep(sweep: SweepConfig, mlflow_settings: MlflowSettings | None = None) -> dict[str, Any]:
    """Train every cell of the grid (at most `max_concurrent` at a time) and rank them."""
    logger = get_run_logger()
    settings = mlflow_settings or load_mlflow_settings()
    tracker = Tracker(settings)
    tracker.check_reachable()
    cells, skipped = expand(sweep)
    for label, why in skipped:
        logger.warning("skipping %s: %s", label, why)
    if not cells:
        raise ConfigError(f"sweep {sweep.name!r}: no valid cell in the grid (skipped {len(skipped)})")
    parent = tracker.start_named_run(sweep.name, {"sweep": sweep.model_dump_json()}, {"aeflow.sweep": "1"})
    logger.info("sweep %s: %d cells, %d at a time on %s, MLflow parent run %s", sweep.name, len(cells),
                sweep.max_concurrent, sweep.runner, parent)  # fmt: skip
    runner = cell_task_runner(sweep.runner, sweep.dask, sweep.max_concurrent)
    outcomes = train_cells.with_options(task_runner=runner)(
        [config for _, config in cells], settings, parent, sweep.max_concurrent
    )

    rows = _ranking([label for label, _ in cells], outcomes, sweep.rank_by)
    table = ranking_markdown(rows, sweep.rank_by)
    print(f"sweep {sweep.name} ranked by {sweep.rank_by}:\n{table}")
    key = re.sub(r"[^a-z0-9-]+", "-", f"{sweep.name}-ranking".lower())
    create_table_artifact(key=key, table=rows, description=f"sweep {sweep.name}, by {sweep.rank_by}")
    tracker.log_text(parent, table + "\n", "ranking.md")
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        tracker.log_metrics(parent, {f"best_{sweep.rank_by}": float(ok[0][sweep.rank_by])})
        tracker.client.set_tag(parent, "aeflow.best_cell", ok[0]["cell"])
    failed = len(rows) - len(ok)
    tracker.end_run(parent, "FINISHED" if not failed else "FAILED")
    return {"parent_run_id": parent, "ranking": rows, "skipped": skipped, "failed": failed}
