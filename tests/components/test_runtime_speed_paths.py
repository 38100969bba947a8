"""The fast inference paths give the same answers: batch slices in threads, and int8 within its error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from components.quantization import quantize_int8
from components.runtime import AutoencoderRuntime
from components.runtime_batches import ParallelBatches

if TYPE_CHECKING:
    from conftest import Exported


def test_slices_cover_every_row_once() -> None:
    for workers in (2, 3, 16):
        splitter = ParallelBatches(workers)
        for rows in (1, 7, 8, 63, 64, 65, 256, 1000):
            covered = np.concatenate([np.arange(rows)[part] for part in splitter.slices(rows)])
            assert covered.tolist() == list(range(rows)), (workers, rows)
    assert ParallelBatches(1).slices(500) == [slice(0, 500)]


@pytest.mark.parametrize("batch", [1, 9, 64, 130])
def test_threaded_slices_match_one_call(exported: Exported, batch: int) -> None:
    images = np.random.default_rng(batch).random((batch, *exported.image_shape), dtype=np.float32)
    single = AutoencoderRuntime(exported.result.folder, batch_workers=1)
    threaded = AutoencoderRuntime(exported.result.folder, batch_workers=3)
    np.testing.assert_allclose(threaded.reconstruct(images), single.reconstruct(images), atol=1e-6)
    codes = single.encode(images)
    np.testing.assert_allclose(threaded.encode(images), codes, atol=1e-6)
    np.testing.assert_allclose(threaded.decode(codes), single.decode(codes), atol=1e-6)


def test_int8_copy_loads_and_stays_close(exported: Exported, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    calibration = rng.random((64, *exported.image_shape), dtype=np.float32)
    out = quantize_int8(exported.result.folder, tmp_path / "int8", calibration)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"]["kind"] == "int8-static"
    graph = (out / "model.onnx").read_bytes()
    assert b"QuantizeLinear" in graph  # really quantised, not a copy
    fp32 = AutoencoderRuntime(exported.result.folder).reconstruct(calibration)
    int8 = AutoencoderRuntime(out).reconstruct(calibration)  # hashes in the new manifest check out
    error = float(np.abs(int8 - fp32).max())
    assert 0 < error < 0.1, error
