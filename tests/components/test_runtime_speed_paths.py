"""The fast inference paths give the same answers: batch slices in threads, and int8 within its error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest
import torch

from components.config import RunConfig
from components.export import export_model
from components.models import build_model
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


class _Recorded:
    """A real session that notes each call, to see which of the runtime's sessions ran."""

    def __init__(self, session: ort.InferenceSession, calls: list[int]) -> None:
        self.session, self.calls = session, calls

    def run(self, names: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(next(iter(feeds.values()))))
        result: list[np.ndarray] = self.session.run(names, feeds)
        return result


def test_one_big_image_runs_on_onnxruntimes_threads(tmp_path: Path) -> None:
    """A fully convolutional model takes any size: one big image goes to the session with
    onnxruntime's own threads, made (and checked) with the others when the runtime loads, so a
    version folder removed later cannot fail it."""
    cfg = RunConfig.model_validate(
        {
            "name": "fcn-threads",
            "data": {"image_size": 16},
            "corruption": {"kind": "gaussian", "mean": 0.0, "std": 0.1},
            "model": {"kind": "denoise", "architecture": "fcn", "channels": [4, 6]},
            "export": {"dir": str(tmp_path / "exported")},
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16), "mse").eval()
    folder = export_model(model, cfg, (1, 16, 16)).folder
    runtime = AutoencoderRuntime(folder, batch_workers=2)
    assert set(runtime._threaded) == {"encoder", "decoder", "model"}
    assert runtime._threaded["model"].get_session_options().intra_op_num_threads == 0  # onnxruntime's choice
    assert runtime.sessions["model"].get_session_options().intra_op_num_threads == 1
    big = np.random.default_rng(0).random((1, 1, 120, 130), dtype=np.float32)
    small = big[:, :, :20, :20].copy()
    expected = AutoencoderRuntime(folder, batch_workers=1).reconstruct(big)
    threaded_calls: list[int] = []
    single_calls: list[int] = []
    runtime._threaded["model"] = _Recorded(runtime._threaded["model"], threaded_calls)  # type: ignore[assignment]
    runtime.sessions["model"] = _Recorded(runtime.sessions["model"], single_calls)  # type: ignore[assignment]
    shutil.rmtree(folder)
    np.testing.assert_allclose(runtime.reconstruct(big), expected, atol=1e-6)
    runtime.reconstruct(small)
    assert threaded_calls == [1]
    assert single_calls == [1]  # the small image: the caller's thread, single-threaded session


def test_small_fixed_images_need_no_threaded_sessions(exported: Exported) -> None:
    assert AutoencoderRuntime(exported.result.folder, batch_workers=2)._threaded == {}


@pytest.mark.parametrize("setting", [{"batch_workers": 0}, {"batch_workers": -3}, {"intra_op_threads": -1}])
def test_thread_settings_below_one_are_refused(exported: Exported, setting: dict[str, int]) -> None:
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"{name} must be at least 1"):
        AutoencoderRuntime(exported.result.folder, **setting)  # type: ignore[arg-type]


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
