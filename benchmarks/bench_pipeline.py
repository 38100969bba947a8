"""Pipeline overhead: the whole Prefect flow (MLflow tracking, evaluation, export, registry) against
`fit` alone, for the same configuration and epochs.

The flow runs in this process on a temporary Prefect home and a fresh SQLite MLflow. A first,
one-epoch flow starts Prefect's ephemeral server (and migrates its new database); it is timed
and reported on its own, since a user's later runs (or a running `aeflow server`) skip it.

`fit` alone runs twice, before and after the flow, and the flow is compared with their mean:
on shared cores the speed of the same training drifts by ±10% over minutes (measured here:
15.3–19.2 s for one 15-epoch run), as much as the overhead being measured.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from components.config import RunConfig
from components.data import ingest
from components.training import fit


def epochs_for(cfg: RunConfig, target_seconds: float) -> int:
    """Enough epochs for about `target_seconds` of training, from a timed 2-epoch run."""
    probe = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2, "progress": False})})
    history = fit(probe, ingest(probe.data).splits).history
    return max(2, math.ceil(target_seconds / history[-1].seconds))


def compare_pipeline(cfg: RunConfig, work: Path) -> list[str]:
    """Time `fit` alone, then the flow; same config, same epochs, same data cache."""
    from flows.pipeline import train_autoencoder
    from flows.settings import MlflowSettings

    settings = MlflowSettings(
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        artifact_location=str(work / "mlartifacts"),
        experiment_name="aeflow-bench",
    )
    one_epoch = cfg.model_copy(
        update={"name": f"{cfg.name}-warm-up", "train": cfg.train.model_copy(update={"epochs": 1})}
    )
    started = time.perf_counter()
    train_autoencoder(one_epoch, settings)
    cold_seconds = time.perf_counter() - started

    splits = ingest(cfg.data).splits

    def fit_seconds() -> float:
        started = time.perf_counter()
        fit(cfg, splits)
        return time.perf_counter() - started

    before = fit_seconds()
    started = time.perf_counter()
    result = train_autoencoder(cfg, settings)
    flow_seconds = time.perf_counter() - started
    after = fit_seconds()
    alone = (before + after) / 2
    train_in_flow = float(result["train_seconds"])
    overhead = (flow_seconds - alone) / alone
    return [
        "| measured | seconds | vs `fit` alone |",
        "|---|---:|---:|",
        f"| `fit` alone ({cfg.train.epochs} epochs), mean of the runs before and after the flow | "
        f"{alone:.1f} | 1.00× |",
        f"| `fit` alone, before / after the flow | {before:.1f} / {after:.1f} | "
        f"{before / alone:.2f}× / {after / alone:.2f}× |",
        f"| training task inside the flow (fit + per-epoch MLflow logging) | {train_in_flow:.1f} | "
        f"{train_in_flow / alone:.2f}× |",
        f"| whole flow (ingest, corrupt, train, evaluate, export, register, champion) | {flow_seconds:.1f} | "
        f"{flow_seconds / alone:.2f}× |",
        f"| the flow's fixed cost (whole flow − training task) | {flow_seconds - train_in_flow:.1f} | "
        f"{(flow_seconds - train_in_flow) / alone:.1%} |",
        f"| first flow of a process (1 epoch; starts the ephemeral Prefect server) | {cold_seconds:.1f} | |",
        "",
        f"**Pipeline overhead: {overhead:+.1%}** of the training time (target < 10%); "
        f"per-epoch tracking alone: {(train_in_flow - alone) / alone:+.1%}.",
    ]
