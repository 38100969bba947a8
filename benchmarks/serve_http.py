"""HTTP load for `make bench-serve`: concurrent keep-alive clients against a real `aeflow serve` process.

Each client thread holds one connection and sends single-image reconstruct requests (a PNG body,
PNG back) for a fixed time; a share of them can be replaced by malformed requests, which must
all come back as 4xx. Latencies are those of the well-formed requests only.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims a huge image: an image bomb, refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def malformed_requests(image_size: int, max_body_bytes: int) -> list[tuple[str, bytes]]:
    """(content type, body) of requests a server must refuse with a 4xx: one of each kind of mistake."""
    noise = _png(np.random.default_rng(0).integers(0, 256, (image_size, image_size), dtype=np.uint8))
    return [
        ("application/json", b"{not json"),
        ("application/json", json.dumps({"images": [[1, 2, 3]]}).encode()),
        ("application/json", json.dumps({"images": [[[float("nan")] * image_size] * image_size]}).encode()),
        ("image/png", noise[: len(noise) // 2]),
        ("image/png", png_declaring(20_000, 20_000)),
        ("image/png", b"not an image at all"),
        ("text/plain", b"hello"),
        ("application/json", b"[" * (max_body_bytes // 2)),
        ("application/json", b"0" * (max_body_bytes + 1)),
    ]


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    # Answers of the wrong kind: a well-formed request that did not get a 200, or a malformed one
    # that did not get a 4xx.
    unexpected: int = 0

    @property
    def ok_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def run_load(
    port: int, clients: int, seconds: float, good: bytes, bad: list[tuple[str, bytes]], bad_share: float
) -> LoadResult:
    """`clients` threads, each on its own keep-alive connection, for `seconds`."""
    result = LoadResult(clients, seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = np.random.default_rng(index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, statuses, errors, unexpected = [], Counter[int](), 0, 0
        while time.monotonic() < stop:
            malformed = rng.random() < bad_share
            ctype, body = bad[int(rng.integers(len(bad)))] if malformed else ("image/png", good)
            start = time.perf_counter()
            try:
                connection.request(
                    "POST", "/v1/reconstruct", body, {"Content-Type": ctype, "Accept": "image/png"}
                )
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            statuses[response.status] += 1
            expected = 400 <= response.status < 500 if malformed else response.status == 200
            if not expected:
                unexpected += 1
            elif not malformed:
                latencies.append(time.perf_counter() - start)
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.close()
        with lock:
            result.latencies.extend(latencies)
            result.statuses.update(statuses)
            result.errors += errors
            result.unexpected += unexpected

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def served(model: Path, port: int, max_body_bytes: int, threads: int) -> Iterator[subprocess.Popen[bytes]]:
    """`aeflow serve` as its own process (its memory is measured on its own), ready when this yields."""
    command = [sys.executable, "-m", "flows.cli", "serve", "--model", str(model), "--port", str(port),
               "--max-body-bytes", str(max_body_bytes), "--threads", str(threads)]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("aeflow serve did not become ready")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
