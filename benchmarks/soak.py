"""`make soak`: a bounded soak of `aeflow serve`; per-minute requests, errors, p50/p99 and RSS → SOAK.md.

A measurement, not a test. A leak or a slow build-up (a cache that grows, sessions that pile up,
a queue that never drains) does not show in a few seconds of load; it shows as a p99 or a memory
figure that climbs from the first minute to the last. The server is a real `aeflow serve`
process on loopback, serving the lesson's conv autoencoder (untrained: speed does not depend on
the weights), exported here in a second; the clients (`benchmarks.serve_http`) run in this
process, each on its own keep-alive connection, and reconnect at each minute's boundary.

By default 5% of the requests are malformed (every kind `malformed_requests` knows: bad JSON,
NaN, truncated PNG, image bomb, oversize body, ...), so the error paths soak too; they must all
get a 4xx. An error is a connection failure or an answer of the wrong kind (a well-formed request
without a 200, a malformed one without a 4xx).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.serve import export_lesson_model, machine
from benchmarks.serve_http import LoadResult, _png, malformed_requests, rss_mib, run_load, served
from flows.service.server import free_port

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Minute:
    index: int
    result: LoadResult
    rss_end: float
    rss_peak: float

    @property
    def requests(self) -> int:
        return sum(self.result.statuses.values()) + self.result.errors

    @property
    def errors(self) -> int:
        return self.result.errors + self.result.unexpected

    def row(self) -> str:
        r = self.result
        return (
            f"| {self.index} | {self.requests:,} | {len(r.latencies):,} | {r.ok_per_second:,.0f} | "
            f"{self.errors} | {r.server_errors} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
            f"{self.rss_end:.1f} | {self.rss_peak:.1f} |"
        )


def _minute(index: int, port: int, pid: int, clients: int, seconds: float, good: bytes, bad_share: float,
            bad: list[tuple[str, bytes]]) -> Minute:  # fmt: skip
    """One window of load, with the server's RSS sampled every second while it runs."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append(rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_load(port, clients, seconds, good, bad, bad_share)
    done.set()
    sampler.join()
    end = rss_mib(pid)
    return Minute(index, result, end, max([*samples, end]))


def verdict(minutes: list[Minute], p99_ratio: float, rss_growth_mib: float) -> list[str]:
    """First against last minute: flat when p99 stays within `p99_ratio` and RSS within `rss_growth_mib`."""
    first, last = minutes[0], minutes[-1]
    p99_a, p99_b = first.result.percentile(99), last.result.percentile(99)
    grew = last.rss_end - first.rss_end
    errors = sum(m.errors for m in minutes)
    flat_p99 = p99_b <= p99_a * p99_ratio
    flat_rss = grew <= rss_growth_mib
    return [
        f"- errors over the whole soak: {errors} (5xx: {sum(m.result.server_errors for m in minutes)})",
        f"- p99 first → last minute: {p99_a:.1f} → {p99_b:.1f} ms (×{p99_b / p99_a:.2f}); "
        f"{'flat' if flat_p99 else 'NOT flat'} (tolerance ×{p99_ratio:g})",
        f"- RSS first → last minute: {first.rss_end:.1f} → {last.rss_end:.1f} MiB ({grew:+.1f} MiB); "
        f"{'flat' if flat_rss else 'NOT flat'} (tolerance +{rss_growth_mib:g} MiB)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the soak")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per reported row")
    parser.add_argument("--bad-share", type=float, default=0.05, help="share of malformed requests")
    parser.add_argument("--server-threads", type=int, default=1, help="onnxruntime threads in the server")
    parser.add_argument("--out", type=Path, default=Path("SOAK.md"))
    args = parser.parse_args()
    windows = max(1, round(args.minutes * 60 / args.window))
    header = machine()
    good = _png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    bad = malformed_requests(28, MAX_BODY)
    port = free_port()
    label = "minute" if args.window == 60 else f"window of {args.window:g} s"
    columns = [
        "requests",
        "ok",
        "ok req/s",
        "errors",
        "5xx",
        "p50 ms",
        "p99 ms",
        "RSS end MiB",
        "RSS peak MiB",
    ]
    table = [f"| {label} | " + " | ".join(columns) + " |", "|---:" * (len(columns) + 1) + "|"]
    print(table[0], flush=True)
    minutes: list[Minute] = []
    with tempfile.TemporaryDirectory(prefix="aeflow-soak-") as tmp:
        _, folder = export_lesson_model(Path(tmp))
        with served(folder, port, MAX_BODY, args.server_threads) as server:
            run_load(port, 4, 2.0, good, bad, 0.2)  # every code path once before the first reading
            start_rss = rss_mib(server.pid)
            started = time.monotonic()
            for index in range(1, windows + 1):
                minute = _minute(
                    index, port, server.pid, args.clients, args.window, good, args.bad_share, bad
                )
                minutes.append(minute)
                table.append(minute.row())
                print(table[-1], flush=True)
            elapsed = time.monotonic() - started
    summary = verdict(minutes, p99_ratio=1.5, rss_growth_mib=20.0)
    text = "\n".join([
        "# Soak (`make soak`)", "", *header, "",
        f"`aeflow serve` (lesson conv autoencoder, 1×28×28, onnxruntime {args.server_threads} intra-op "
        f"thread) on 127.0.0.1; {args.clients} concurrent clients in another process on the same cores, "
        f"each sending single-image `POST /v1/reconstruct` (PNG in, PNG out), {args.bad_share:.0%} of "
        f"them malformed; {elapsed / 60:.1f} minutes in {len(minutes)} windows of {args.window:g} s. "
        "Latencies are of the well-formed requests; RSS is the server's, read from /proc (after a "
        f"warm-up: {start_rss:.1f} MiB).", "",
        *table, "", *summary, "",
    ])  # fmt: skip
    args.out.write_text(text)
    print("\n".join(summary))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
