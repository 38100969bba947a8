"""Running the service: uvicorn in the foreground (`aeflow serve`) or in a thread (tests, embedding)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it), for tests and benchmarks."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    # One process, one event loop: the model's sessions are shared, and onnxruntime does the threading.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, workers=1)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    uvicorn.Server(_config(app, host, port, log_level)).run()


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve `app` on a real socket in a thread; yields its base URL and stops it on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(_config(app, host, port, "warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
