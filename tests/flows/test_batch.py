"""Batch inference with the champion from the registry: outputs, report, skipping, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.runtime import AutoencoderRuntime
from flows.batch import BatchInferenceRequest, batch_inference
from flows.pipeline import train_autoencoder
from tests.flows.conftest import sqlite_settings, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> dict:
    root = tmp_path_factory.mktemp("batch")
    settings = sqlite_settings(root)
    result = train_autoencoder(tiny_config(root, "name=batch-denoise"), settings)
    assert result["champion"]["promoted"]
    return {"root": root, "settings": settings, "result": result}


def _inputs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    (folder / "nested").mkdir(parents=True)
    for name in ("a.png", "nested/b.png"):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / name)
    np.save(folder / "batch.npy", rng.random((3, 16, 16), dtype=np.float32))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an input")


def test_champion_outputs_report_and_rerun_skips(
    champion: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["settings"].tracking_uri)
    _inputs(tmp_path / "in")
    request = BatchInferenceRequest(
        model="models:/batch-denoise@champion", input_dir=tmp_path / "in", output_dir=tmp_path / "out"
    )
    report = batch_inference(request)
    assert sorted(report["processed"]) == ["a.png", "batch.npy", "nested/b.png"]
    assert [item["file"] for item in report["failed"]] == ["broken.png"]
    assert report["run_id"] == champion["result"]["run_id"]

    out = tmp_path / "out"
    runtime = AutoencoderRuntime.load(champion["result"]["export_dir"])
    image = np.asarray(Image.open(tmp_path / "in" / "a.png"), dtype=np.float32)[None, None] / 255
    np.testing.assert_allclose(np.load(out / "a.codes.npy"), runtime.encode(image), atol=1e-5)
    written = np.asarray(Image.open(out / "a.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(written, runtime.reconstruct(image)[0, 0], atol=1 / 255 + 1e-6)
    assert (out / "nested" / "b.png").is_file()
    assert np.load(out / "batch.codes.npy").shape[0] == 3
    assert {p.name for p in out.glob("batch-*.png")} == {"batch-000.png", "batch-001.png", "batch-002.png"}
    stored = json.loads((out / "report.json").read_text())
    assert stored["failed"][0]["file"] == "broken.png" and stored["failed"][0]["error"]
    assert "broken.png" in (out / "report.md").read_text()
    assert not list(out.rglob("*.partial*"))

    again = batch_inference(request)
    assert again["processed"] == [] and sorted(again["skipped"]) == sorted(report["processed"])

    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "in" / "a.png")  # changed input
    third = batch_inference(request)
    assert third["processed"] == ["a.png"]


def test_request_needs_inputs() -> None:
    with pytest.raises(ValueError, match="input_dir"):
        BatchInferenceRequest(model="exported/x")
