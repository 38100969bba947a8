"""Start real servers (mlflow, prefect) as subprocesses on free loopback ports, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def server_process(
    command: list[str], health_url: str, log: Path, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group until the block ends; yields once `health_url` is up."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        wait_for_http(health_url, process, log, timeout_s)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` on SQLite with proxied artifacts; yields its http:// URI."""
    port = free_port()
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    with server_process(command, f"{uri}/health", root / "mlflow-server.log"):
        yield uri


def mlflow_config(root: Path, tracking_uri: str) -> Path:
    """An mlflow.yml for subprocesses (AEFLOW_MLFLOW_CONFIG), so nothing lands in the project folder."""
    path = root / "mlflow.yml"
    path.write_text(f"tracking_uri: {tracking_uri}\nartifact_location: {root / 'mlartifacts'}\n")
    return path


# `python -m flows.cli` from the checkout under test (not whatever `aeflow` is first on PATH).
AEFLOW = [sys.executable, "-m", "flows.cli"]
CHECKOUT = Path(__file__).resolve().parents[2]
CHECKOUT_ENV = {"PYTHONPATH": str(CHECKOUT)}
