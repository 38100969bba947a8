"""`make bench-serve`: torch eager vs onnxruntime, then the HTTP service under load; writes BENCH_SERVE.md.

A measurement, not a test: it prints and writes the numbers of this machine at this moment (other
work on the same cores shows up in them). The model is the lesson's conv autoencoder on 28×28
digits (16-8-8 channels, an 8×4×4 code), untrained: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import importlib.metadata as meta
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_inference import median_seconds
from benchmarks.serve_http import LoadResult, _png, malformed_requests, rss_mib, run_load, served
from components.export import export_model
from components.models import build_model
from components.presets import load_config
from components.runtime import AutoencoderRuntime
from flows.service.server import free_port

BATCHES = (1, 64, 256)
CLIENTS = (1, 8, 32)


def export_lesson_model(root: Path) -> tuple[torch.nn.Module, Path]:
    cfg = load_config(
        "lesson-ae", overrides=["name=bench-lesson-ae", f"export.dir={root}", "data.image_size=28"]
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), (1, 28, 28)).eval()
    return model, export_model(model, cfg, (1, 28, 28)).folder


def compare_engines(model: torch.nn.Module, folder: Path, threads: int, budget_s: float) -> list[str]:
    torch.set_num_threads(threads)
    runtime = AutoencoderRuntime(folder, intra_op_threads=threads)
    rows = [
        "| batch | torch eager ms | onnxruntime ms | torch img/s | onnxruntime img/s | ratio torch / ort |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch in BATCHES:
        images = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
        tensor = torch.from_numpy(images)

        def eager(x: torch.Tensor = tensor) -> object:
            with torch.inference_mode():
                return model.decode(model.encode(x))

        torch_s = median_seconds(eager, budget_s)
        ort_s = median_seconds(lambda x=images: runtime.decode(runtime.encode(x)), budget_s)
        rows.append(f"| {batch} | {torch_s * 1e3:.3f} | {ort_s * 1e3:.3f} | {batch / torch_s:,.0f} | "
                    f"{batch / ort_s:,.0f} | {torch_s / ort_s:.2f}× |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def _load_row(label: str, result: LoadResult) -> str:
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()))
    return (
        f"| {label} | {result.clients} | {result.ok_per_second:,.0f} | {result.percentile(50):.1f} | "
        f"{result.percentile(99):.1f} | {result.server_errors} | {result.errors} | {statuses} |"
    )


def load_test(folder: Path, seconds: float, server_threads: int) -> list[str]:
    port, max_body = free_port(), 1024 * 1024
    good = _png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    bad = malformed_requests(28, max_body)
    rows = ["| requests | clients | ok req/s | p50 ms | p99 ms | 5xx | connection errors | statuses |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    memory: list[tuple[str, float]] = []
    with served(folder, port, max_body, server_threads) as server:
        run_load(port, 4, 1.0, good, bad, 0.1)  # warm-up: every code path, before memory is read
        memory.append(("after warm-up", rss_mib(server.pid)))
        for clients in CLIENTS:
            rows.append(_load_row("well-formed", run_load(port, clients, seconds, good, bad, 0.0)))
            print(rows[-1], flush=True)
        memory.append(("after the well-formed runs", rss_mib(server.pid)))
        for round_ in (1, 2):
            for clients in CLIENTS:
                mixed = run_load(port, clients, seconds, good, bad, 0.1)
                rows.append(_load_row(f"10% malformed (round {round_})", mixed))
                print(rows[-1], flush=True)
            memory.append((f"after malformed round {round_}", rss_mib(server.pid)))
    rows += ["", "| server memory (RSS) | MiB |", "|---|---:|"]
    rows += [f"| {label} | {mib:.1f} |" for label, mib in memory]
    return rows


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    versions = ", ".join(
        f"{p} {meta.version(p)}" for p in ("torch", "onnxruntime", "fastapi", "uvicorn", "numpy")
    )
    system = f"Python {platform.python_version()} on {platform.system()} {platform.release()}"
    return [
        f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {system}",
        f"- versions: {versions}",
        f"- load average (1 min) at start: {os.getloadavg()[0]:.2f}; other work shares these cores",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("BENCH_SERVE.md"))
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of torch and onnxruntime")
    parser.add_argument("--engine-seconds", type=float, default=1.5, help="time budget per engine and batch")
    parser.add_argument("--load-seconds", type=float, default=4.0, help="duration of each HTTP load run")
    parser.add_argument("--server-threads", type=int, default=1, help="onnxruntime threads in the server")
    args = parser.parse_args()
    header = machine()
    with tempfile.TemporaryDirectory(prefix="aeflow-bench-") as tmp:
        model, folder = export_lesson_model(Path(tmp))
        engines = compare_engines(model, folder, args.threads, args.engine_seconds)
        http = load_test(folder, args.load_seconds, args.server_threads)
    http_title = (
        f"## HTTP: single-image `POST /v1/reconstruct` (PNG in, PNG out), {args.load_seconds:g} s per run"
    )
    text = "\n".join([
        "# Serving benchmark (`make bench-serve`)", "", *header, "",
        f"## encode + decode, torch eager vs onnxruntime ({args.threads} intra-op threads each)", "",
        "Lesson conv autoencoder, 1×28×28 → 8×4×4 → 1×28×28; median time per call; onnxruntime through",
        "`AutoencoderRuntime` (input checks included).", "", *engines, "", http_title, "",
        f"`aeflow serve` in its own process (onnxruntime: {args.server_threads} intra-op thread), clients in",
        "another process on the same cores, each on a keep-alive connection. Latencies are of well-formed",
        "requests; malformed ones (bad JSON, wrong shape, NaN, truncated PNG, image bomb, non-image, wrong",
        "type, deep nesting, body over the 1 MiB cap) must all be 4xx.", "", *http, "",
    ])  # fmt: skip
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
