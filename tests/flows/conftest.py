from __future__ import annotations

from pathlib import Path

from components.config import RunConfig
from components.presets import load_config
from flows.settings import MlflowSettings


def tiny_config(root: Path, *extra: str) -> RunConfig:
    """The smoke preset with every output under `root`."""
    return load_config(
        "smoke",
        overrides=[
            f"data.cache_dir={root / 'cache'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"export.dir={root / 'exported'}",
            "train.progress=false",
            *extra,
        ],
    )


def sqlite_settings(root: Path, experiment: str = "tests") -> MlflowSettings:
    return MlflowSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=str(root / "mlartifacts"),
        experiment_name=experiment,
    ).resolved(root)
