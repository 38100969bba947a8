"""DDP for real: torchrun starts 2 gloo processes on the CPU. Same seed and global batch must give
the weights one process gives, and the flow must train through torchrun and carry on to export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from components.data import ingest
from components.presets import load_config
from components.training import fit
from flows.pipeline import train_autoencoder
from tests.flows.conftest import sqlite_settings, tiny_config

ROOT = Path(__file__).resolve().parents[2]
# Measured: 3e-8 with the weighted all-reduce; 1.1e-3 if each rank's gradient counted 1/2 whatever
# its share of the uneven last batch (3 + 2 images). The tolerance separates the two clearly.
ATOL = 1e-5


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout's code
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "flows.train_ddp", *args]  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_two_processes_reach_the_weights_of_one(tmp_path: Path) -> None:
    # 197 training images in global batches of 64: the last batch (5) splits 3 + 2.
    overrides = [
        f"data.cache_dir={tmp_path / 'cache'}",
        f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
        "train.progress=false",
        "train.device=cpu",
        "train.num_threads=1",
        "train.epochs=3",
        "data.limit=197",
    ]
    sets = [item for override in ["name=two", *overrides] for item in ("--set", override)]
    done = _torchrun("--preset", "smoke", *sets, "--result", str(tmp_path / "result.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("epoch 3/3:") == 1  # rank 0 alone reports

    one_cfg = load_config("smoke", overrides=["name=one", *overrides])
    assert one_cfg.train.channels_last  # the layout DDP has to cope with
    splits = ingest(one_cfg.data).splits
    assert len(splits.train) == 197
    one = fit(one_cfg, splits)

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    two = torch.load(result["checkpoint"], map_location="cpu", weights_only=True)
    worst = max((two["model"][k] - v).abs().max().item() for k, v in one.model.state_dict().items())
    assert worst <= ATOL, f"max |w_ddp - w_single| = {worst:.2e}"
    for mine, theirs in zip(one.history, result["history"], strict=True):
        assert theirs["train_loss"] == pytest.approx(mine.train_loss, rel=1e-5)
        assert theirs["val_loss"] == pytest.approx(mine.val_loss, rel=1e-5)


@pytest.mark.slow
def test_flow_trains_through_torchrun_then_evaluates_and_exports(
    tmp_path: Path, prefect_harness: None
) -> None:
    cfg = tiny_config(
        tmp_path, "train.strategy=ddp", "train.processes=2", "train.device=cpu", "name=ddp-flow"
    )
    settings = sqlite_settings(tmp_path)
    result = train_autoencoder(cfg, settings)

    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.strategy"] == "ddp"
    # Rank 0 logged each epoch exactly once.
    history = client.get_metric_history(result["run_id"], "train_loss")
    assert [m.step for m in history] == list(range(1, cfg.train.epochs + 1))
    assert result["metrics"]["test_psnr"] > 0
    assert (Path(result["export_dir"]) / "model.onnx").is_file()
    assert set(result["registered_versions"]) == {"model", "encoder", "decoder"}


@pytest.mark.slow
def test_a_failing_worker_fails_the_launch_with_its_message(tmp_path: Path) -> None:
    from flows.ddp_launch import DistributedTrainingError, train_distributed

    # 193 training images in batches of 64 leave 1 image for the last batch: one rank would get none.
    cfg = tiny_config(tmp_path, "train.strategy=ddp", "train.device=cpu", "data.limit=193", "name=uneven")
    data = ingest(cfg.data)
    lines: list[str] = []
    with pytest.raises(
        DistributedTrainingError,
        match=r"^torchrun exited with 1; rank \d: \S*DistributedSetupError: the last batch holds 1 image",
    ):
        train_distributed(cfg, data.path, tmp_path / "work", None, None, log=lines.append)
    assert lines[0].startswith("launching 2 DDP processes")
    assert not (tmp_path / "checkpoints" / "uneven").exists()
