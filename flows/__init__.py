"""Prefect orchestration, MLflow tracking and the CLI around the pure `components` package.

Prefect reads its settings when it is first imported, so the defaults that keep its state inside
the project (not in ~/.prefect) and give its ephemeral server time to start are set here, before
any module of this package imports prefect. Values already in the environment win.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The ephemeral API server is a subprocess-free, in-process server: no telemetry, no update checks.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# MLflow's HTTP client retries 7 times with exponential backoff and waits 120 s per request by
# default: minutes per call once a tracking server goes away mid-run. A few quick retries are
# enough for a blip; a lasting outage then fails the task (which Prefect retries, resuming).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
