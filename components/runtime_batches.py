"""Where the runtime runs a batch on the CPU: the caller's thread, slices side by side, or
onnxruntime's own intra-op threads.

For the small graphs aeflow exports, onnxruntime's intra-op threads scale poorly: each of the
graph's dozen ops is split across the threads and joined again, and between ops the threads
spin or sleep. Measured on 2 cores with the lesson autoencoder (BENCHMARKS.md, table 3):
single-threaded calls on slices of at most 64 images, one slice per core at a time, ran
batch 256 at 1.1–1.4× the speed of one call on two intra-op threads. At batch 1 neither won
consistently, so small batches stay on the caller's thread with no thread hand-off. One large
image is the exception, where a slice cannot be cut: it goes to a session with onnxruntime's
own threads.

`session.run` is thread-safe and releases the GIL, so the slices really run at once.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

# Work per slice, in image elements: below about 8 MNIST images a slice costs more in thread
# hand-offs than it saves; above 64 its activations stop fitting in the cache.
MIN_SLICE_ELEMENTS = 8 * 28 * 28
MAX_SLICE_ELEMENTS = 64 * 28 * 28


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


class ParallelBatches:
    """`run(session, feeds)` like `session.run(None, feeds)`, cutting big batches across `workers` threads."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aeflow-ort") if workers > 1 else None

    def slices(self, rows: int, elements_per_row: int = 28 * 28) -> list[slice]:
        """Consecutive row ranges covering the batch: one per worker, within the cache-sized bounds."""
        per_row = max(elements_per_row, 1)
        if self._pool is None or rows < 2 or rows * per_row < 2 * MIN_SLICE_ELEMENTS:
            return [slice(0, rows)]
        fewest = math.ceil(MIN_SLICE_ELEMENTS / per_row)
        most = max(1, MAX_SLICE_ELEMENTS // per_row)
        size = max(1, min(most, max(fewest, math.ceil(rows / self.workers))))
        return [slice(start, start + size) for start in range(0, rows, size)]

    def run(
        self,
        session: ort.InferenceSession,
        feeds: dict[str, np.ndarray],
        elements_per_row: int,
        threaded: ort.InferenceSession | None = None,
    ) -> list[np.ndarray]:
        """`threaded`: a session on onnxruntime's own threads, for a big batch that is one slice."""
        rows = len(next(iter(feeds.values())))
        parts = self.slices(rows, elements_per_row)
        if len(parts) == 1:
            big = rows * elements_per_row >= 2 * MIN_SLICE_ELEMENTS
            chosen = threaded if threaded is not None and big else session
            outputs: list[np.ndarray] = chosen.run(None, feeds)
            return outputs

        def run_slice(part: slice) -> list[np.ndarray]:
            result: list[np.ndarray] = session.run(None, {k: v[part] for k, v in feeds.items()})
            return result

        assert self._pool is not None  # more than one slice only with a pool
        results = list(self._pool.map(run_slice, parts))
        return [np.concatenate(outputs) for outputs in zip(*results, strict=True)]
