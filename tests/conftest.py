"""Keep every test's state out of the project folder and the user's home.

Prefect reads its settings on first import, so PREFECT_HOME is pointed at a temporary folder
here, before any test module imports `flows` or `prefect`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

_STATE = tempfile.mkdtemp(prefix="aeflow-tests-")
os.environ["PREFECT_HOME"] = os.path.join(_STATE, "prefect")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API (ephemeral server on a temporary SQLite database) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI; an earlier in-process run would
    otherwise leak its test database into every subprocess a later test starts."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
