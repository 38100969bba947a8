"""Inference: torch eager, a default onnxruntime session, `AutoencoderRuntime`, and int8 static.

All run the same trained weights (encoder + decoder in one graph) on the same held-out images.
"Default session" is `InferenceSession(path)` with nothing set, on the graph of the lesson's
layer order (benchmarks/lesson_graph.py): the baseline the issue measures against. The runtime
is what aeflow serves with, on aeflow's exported `model.onnx`, with its default batch workers
(one per core) and with `batch_workers=1` (onnxruntime's intra-op threads). The int8 graph is made by
onnxruntime's static quantisation (QDQ, per-channel weights, calibrated on training images).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.lesson_graph import export_lesson_graph
from components.models import Autoencoder
from components.quantization import quantize_int8
from components.runtime import AutoencoderRuntime
from components.runtime_batches import usable_cores

BATCHES = (1, 64, 256)
FP32 = f"AutoencoderRuntime (fp32), as served: {usable_cores()} batch workers"


def median_seconds(fn: Callable[[], object], budget_s: float) -> float:
    """Median seconds per call over as many calls as fit in `budget_s` (at least 5), after a warm-up."""
    for _ in range(3):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _engines(
    model: Autoencoder, folder: Path, int8_folder: Path
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    runtime = AutoencoderRuntime(folder)
    lesson = export_lesson_graph(model, runtime.input_shape, folder.parent / "lesson-order.onnx")
    default = ort.InferenceSession(str(lesson), providers=["CPUExecutionProvider"])
    same_graph = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    int8 = AutoencoderRuntime(int8_folder)
    own_threads = AutoencoderRuntime(folder, batch_workers=1)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return {
        "torch eager": eager,
        "onnxruntime, default session": lambda x: default.run(None, {"images": x})[0],
        "onnxruntime, default session on aeflow's graph": lambda x: same_graph.run(None, {"images": x})[0],
        FP32: runtime.reconstruct,
        "AutoencoderRuntime, batch_workers=1 (onnxruntime's intra-op threads)": own_threads.reconstruct,
        "AutoencoderRuntime (int8 static)": int8.reconstruct,
    }


def compare_engines(
    model: Autoencoder, folder: Path, calibration: np.ndarray, test: np.ndarray, budget_s: float, rounds: int
) -> list[str]:
    """Images/s per engine and batch (median of `rounds` interleaved rounds), then accuracy."""
    int8_folder = quantize_int8(folder, folder.parent / f"{folder.name}-int8", calibration)
    engines = _engines(model, folder, int8_folder)
    names = list(engines)
    speed: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for batch in BATCHES:
            x = np.ascontiguousarray(test[:batch])
            for name in names:
                seconds = median_seconds(lambda fn=engines[name], x=x: fn(x), budget_s)
                speed.setdefault((name, batch), []).append(batch / seconds)
    base = "onnxruntime, default session"
    rows = ["| engine | " + " | ".join(f"batch {b} img/s" for b in BATCHES) + " | × default session at 256 |",
            "|---|" + "---:|" * (len(BATCHES) + 1)]  # fmt: skip
    for name in names:
        medians = [statistics.median(speed[(name, b)]) for b in BATCHES]
        ratio = medians[-1] / statistics.median(speed[(base, BATCHES[-1])])
        rows.append(f"| {name} | " + " | ".join(f"{m:,.0f}" for m in medians) + f" | **{ratio:.2f}×** |")
        print(rows[-1], flush=True)
    rows += ["", *accuracy_rows(engines, test), "", *overhead_rows(folder, test[:1], budget_s)]
    return rows


def accuracy_rows(engines: dict[str, Callable[[np.ndarray], np.ndarray]], test: np.ndarray) -> list[str]:
    """What int8 costs: reconstruction MSE on held-out images, and the largest change per pixel."""
    x = np.ascontiguousarray(test)
    fp32 = engines[FP32](x)
    rows = ["| engine | test MSE vs clean images | max |Δ| vs fp32 onnxruntime |", "|---|---:|---:|"]
    for name in ("torch eager", FP32, "AutoencoderRuntime (int8 static)"):
        out = engines[name](x)
        rows.append(
            f"| {name} | {float(np.mean((out - x) ** 2)):.5f} | {float(np.abs(out - fp32).max()):.2e} |"
        )
    return rows


def overhead_rows(folder: Path, one: np.ndarray, budget_s: float) -> list[str]:
    """The runtime's own checks and conversions at batch 1, against its bare session call.

    Measured three times, interleaved: the checks alone (`runtime.images`, what the runtime adds
    in front of `session.run`; the output is returned as onnxruntime gives it), and the whole
    call. At batch 1 the runtime's session is single-threaded; microsecond timings on shared
    cores swing by ±30% from one loop to the next, so the whole call's extra is indicative.
    """
    runtime = AutoencoderRuntime(folder)
    session = runtime.sessions["model"]
    x = np.ascontiguousarray(one)
    bare, checks, full = [], [], []
    for _ in range(3):
        bare.append(median_seconds(lambda: session.run(None, {"images": x}), budget_s / 3))
        checks.append(median_seconds(lambda: runtime.images(x), budget_s / 3))
        full.append(median_seconds(lambda: runtime.reconstruct(x), budget_s / 3))
    b, c, f = (statistics.median(v) for v in (bare, checks, full))
    return [
        "| batch 1 | µs per call | share of the bare session call |",
        "|---|---:|---:|",
        f"| bare `session.run` | {b * 1e6:.1f} | |",
        f"| the runtime's input checks and conversion (`runtime.images`) | {c * 1e6:.1f} | **{c / b:.1%}** "
        "(target < 20%) |",
        f"| `AutoencoderRuntime.reconstruct`, whole call | {f * 1e6:.1f} | +{(f - b) / b:.1%} |",
    ]
