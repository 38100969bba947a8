"""MLflow on one SQLite file shared by several processes at once (four `aeflow run`s, a sweep, a server).

MLflow opens SQLite with its default rollback journal, in which an open read transaction blocks
every writer's commit; after 20 s of waiting the writer fails with "database is locked". With
write-ahead logging (`journal_mode=WAL`, stored in the database file itself and set once, when
this module first opens the database) readers (a browsing `mlflow ui`, another run's search) never block a
writer's commit, nor a writer them. Writers still take turns; SQLAlchemy's pysqlite driver
already waits 20 s for a turn, far longer than any of MLflow's writes holds the lock.

The first use also runs MLflow's migrations under a file lock, so two runs starting on a new
database do not both create its tables.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

from mlflow.tracking import MlflowClient

_WAIT_S = 20.0
_INITIALISED: set[Path] = set()  # databases this process has already created or checked


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path, timeout=_WAIT_S) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])


def initialise_sqlite(path: Path, uri: str) -> None:
    """Create or migrate the database under a file lock, then switch it to write-ahead logging."""
    if path in _INITIALISED:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f"{path.name}.init-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
            with sqlite3.connect(path, timeout=_WAIT_S) as connection:
                connection.execute("PRAGMA journal_mode = WAL")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _INITIALISED.add(path)
