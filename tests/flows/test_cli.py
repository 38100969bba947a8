"""The `aeflow` console script as a user runs it: a real subprocess, real exit codes and output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.presets import PRESETS
from tests.servers.processes import CHECKOUT_ENV

AEFLOW = str(Path(sys.executable).with_name("aeflow"))


def _aeflow(*args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None):
    full_env = {**os.environ, **CHECKOUT_ENV, "PREFECT_HOME": str(cwd / ".prefect"), **(env or {})}
    return subprocess.run(
        [AEFLOW, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def test_presets_are_listed(tmp_path: Path) -> None:
    proc = _aeflow("presets", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list(PRESETS)


MLFLOW_YML = "tracking_uri: sqlite:///runs.db\nartifact_location: ./artifacts\nexperiment_name: cli-test\n"


def _nothing_written(folder: Path) -> None:
    """A refused run leaves no export, no MLflow database or artifacts, no ingest cache."""
    for name in ("exported", "runs.db", "artifacts", ".cache"):
        assert not (folder / name).exists(), name


def _one_clear_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (["run", "--preset", "smoke", "--set", "corruption.std=-1"], "corruption.std"),
        (["run", "--preset", "smoke", "--set", "train.epochs"], "section.key=value"),
        (["run", "--preset", "smoke", "--set", "model.latent=3"], "model.latent"),
        (["run", "--config", "missing.yaml"], "missing.yaml does not exist"),
        (["run", "--preset", "smoke", "--set", "data.name=imagenet"], "data.name: Input should be"),
        (["run", "--preset", "smoke", "--set", "model.kind=gan"], "model.kind: Input should be"),
        (["run", "--set", "corruption.kind=downsample", "--set", "corruption.factor=3"], "corruption.factor"),
        (["run", "--preset", "smoke", "--set", "model.latent_dim=0"], "model.latent_dim"),
        (["run", "--preset", "smoke", "--set", "data.image_size=0"], "data.image_size"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "mlflow.yml").write_text(MLFLOW_YML)
    proc = _aeflow(*args, cwd=tmp_path)
    assert expected in _one_clear_error(proc)
    _nothing_written(tmp_path)


def test_dataset_missing_offline_names_the_files_and_download_setting(tmp_path: Path) -> None:
    (tmp_path / "mlflow.yml").write_text(MLFLOW_YML)
    proc = _aeflow(
        "run", "--preset", "lesson-ae", "--set", "data.name=mnist", "--set", "data.root=nowhere", cwd=tmp_path
    )
    message = _one_clear_error(proc)
    assert str(Path("nowhere") / "MNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "data.download is false" in message and "data.download=true" in message
    _nothing_written(tmp_path)


def test_a_corrupt_image_in_the_folder_stops_the_run_before_mlflow_or_export(tmp_path: Path) -> None:
    """The folder has images (the cheap check passes); one is truncated, which only decoding finds."""
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    for i in range(12):
        Image.new("L", (16, 16), 20 * i).save(images / f"{i:02d}.png")
    broken = images / "07.png"
    broken.write_bytes(broken.read_bytes()[:40])
    (tmp_path / "mlflow.yml").write_text(MLFLOW_YML)
    proc = _aeflow(
        "run", "--preset", "smoke", "--set", "data.name=folder", "--set", "data.root=photos",
        "--set", "data.cache_dir=.cache", cwd=tmp_path,
    )  # fmt: skip
    message = _one_clear_error(proc)
    assert str(Path("photos") / "07.png") in message and "Remove or replace" in message
    assert str(Path("photos") / "06.png") not in message
    _nothing_written(tmp_path)


@pytest.mark.slow
def test_run_writes_onnx_manifest_and_mlflow_run(tmp_path: Path) -> None:
    """What `make run` does, on the tiny preset, from a folder with its own mlflow.yml."""
    (tmp_path / "mlflow.yml").write_text(MLFLOW_YML)
    proc = _aeflow("run", "--preset", "smoke", "--set", "train.progress=false", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = tmp_path / "exported" / "smoke" / "v1"
    assert (tmp_path / "exported" / "smoke" / "latest").resolve() == export
    for name in ("encoder.onnx", "decoder.onnx", "model.onnx", "manifest.json"):
        assert (export / name).is_file()
        assert str(Path("exported") / "smoke" / "v1" / name) in proc.stdout
    db = tmp_path / "runs.db"
    assert db.is_file() and str(db) in proc.stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{db}" in proc.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("cli-test").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "test_psnr" in runs[0].data.metrics
    assert (tmp_path / "artifacts").is_dir()
