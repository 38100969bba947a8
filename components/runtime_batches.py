"""Run one onnxruntime session on slices of a batch in parallel threads (`batch_workers`).

For the lesson-sized graphs, measured on 2 cores: with other work on the cores, slices run by
single-threaded calls side by side beat one call on two spinning intra-op threads by about 1.5×;
on idle cores they tie at batch 256 and lose at batch 1, so the runtime leaves this off unless
asked. Slices stay cache-sized (at most 64 rows). `session.run` is thread-safe and releases the
GIL, so the threads really run at once.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

MIN_ROWS, MAX_ROWS = 8, 64  # rows per slice: below 8 the threads cost more than they save


class ParallelBatches:
    """`run(session, feeds)` like `session.run(None, feeds)`, on `workers` threads for big batches."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="aeflow-ort") if workers > 1 else None

    def slices(self, rows: int) -> list[slice]:
        if self._pool is None or rows < 2 * MIN_ROWS:
            return [slice(0, rows)]
        size = min(MAX_ROWS, max(MIN_ROWS, math.ceil(rows / self.workers)))
        return [slice(start, start + size) for start in range(0, rows, size)]

    def run(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = len(next(iter(feeds.values())))
        if self._pool is None or rows < 2 * MIN_ROWS:
            outputs: list[np.ndarray] = session.run(None, feeds)
            return outputs
        parts = self.slices(rows)

        def run_slice(part: slice) -> list[np.ndarray]:
            result: list[np.ndarray] = session.run(None, {k: v[part] for k, v in feeds.items()})
            return result

        results = list(self._pool.map(run_slice, parts))
        return [np.concatenate(outputs) for outputs in zip(*results, strict=True)]
