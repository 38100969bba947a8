from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from components.config import RunConfig
from components.presets import load_config
from flows.settings import MlflowSettings


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API (ephemeral server on a temporary SQLite database) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


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
