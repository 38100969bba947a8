"""MLflow on a SQLite file other processes read at the same time: no "database is locked".

Measured with MLflow's default rollback journal: a metric logged while another connection holds a
read transaction open waits 20 s for it and then fails with "database is locked".
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from flows.sqlite_store import journal_mode
from flows.tracking import Tracker
from tests.flows.conftest import sqlite_settings


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracker, Path]:
    settings = sqlite_settings(tmp_path_factory.mktemp("sqlite"))
    tracker = Tracker(settings)
    return tracker, Path(settings.tracking_uri.removeprefix("sqlite:///"))


def _new_run(tracker: Tracker) -> str:
    return str(tracker.client.create_run(tracker.experiment_id()).info.run_id)


def test_a_long_read_does_not_block_logging(tracked: tuple[Tracker, Path]) -> None:
    tracker, db = tracked
    assert journal_mode(db) == "wal"
    run_id = _new_run(tracker)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM metrics").fetchone()  # holds a read snapshot open
    started = time.monotonic()
    try:
        tracker.log_metrics(run_id, {"val_loss": 0.5})
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert time.monotonic() - started < 4.5  # did not wait for the reader (SQLite's default wait is 5 s)
    assert tracker.client.get_run(run_id).data.metrics == {"val_loss": 0.5}
