"""The fast inference paths give the same answers: batch slices in threads, and int8 within its error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest

from components.quantization import quantize_int8
from components.runtime import AutoencoderRuntime
from components.runtime_batches import ParallelBatches, usable_cores

if TYPE_CHECKING:
    from conftest import Exported


def test_slices_cover_every_row_once() -> None:
    for workers in (2, 3, 16):
        splitter = ParallelBatches(workers)
        for elements in (28 * 28, 1, 128 * 128):
            for rows in (1, 7, 8, 63, 64, 65, 256, 1000):
                covered = np.concatenate([np.arange(rows)[part] for part in splitter.slices(rows, elements)])
                assert covered.tolist() == list(range(rows)), (workers, elements, rows)
    assert ParallelBatches(1).slices(500) == [slice(0, 500)]


def test_slices_are_sized_by_the_work_in_them() -> None:
    """MNIST-sized rows: a slice per worker, at most 64 rows, none below 8; big images: fewer rows."""
    two = ParallelBatches(2)
    assert [p.stop - p.start for p in two.slices(256)] == [64] * 4
    assert [p.stop - p.start for p in two.slices(20)] == [10, 10]
    assert two.slices(15) == [slice(0, 15)]  # under two slices' worth of work: the caller's thread
    assert [p.stop - p.start for p in two.slices(4, 128 * 128)] == [2, 2]
    assert two.slices(1, 512 * 512) == [slice(0, 1)]  # one image cannot be cut


def test_one_big_image_goes_to_the_threaded_session(exported: Exported) -> None:
    """Small batches and slices run on the single-threaded session; a batch that is big work but
    one slice asks for the session with onnxruntime's own threads."""
    runtime = AutoencoderRuntime(exported.result.folder, batch_workers=2)
    session = runtime.sessions["model"]
    asked: list[str] = []

    def threaded() -> ort.InferenceSession:
        asked.append("threaded")
        return runtime._threaded_session("model")

    splitter = ParallelBatches(2)
    one = {"images": np.zeros((1, *exported.image_shape), dtype=np.float32)}
    splitter.run(session, one, elements_per_row=16 * 16, threaded=threaded)
    assert asked == []  # small: the caller's thread, single-threaded session
    splitter.run(session, one, elements_per_row=512 * 512, threaded=threaded)
    assert asked == ["threaded"]
    assert runtime._threaded["model"].get_session_options().intra_op_num_threads == 0  # onnxruntime's choice
    assert session.get_session_options().intra_op_num_threads == 1


def test_default_runtime_uses_every_core_and_single_threaded_sessions(exported: Exported) -> None:
    runtime = AutoencoderRuntime(exported.result.folder)
    assert runtime._batches.workers == usable_cores()
    expected = 1 if usable_cores() > 1 else 0
    assert runtime.sessions["model"].get_session_options().intra_op_num_threads == expected
    own_threads = AutoencoderRuntime(exported.result.folder, intra_op_threads=2)
    assert own_threads._batches.workers == 1  # asking for intra-op threads turns the slicing off
    assert own_threads.sessions["model"].get_session_options().intra_op_num_threads == 2


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
