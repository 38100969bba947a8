"""The comparison sweep under a real Prefect API: nested MLflow runs, the ranking, the concurrency cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from components.presets import ConfigError
from flows.sweep import SweepConfig, expand, load_sweep
from tests.flows.conftest import sqlite_settings

ROOT = Path(__file__).resolve().parents[2]


def _sweep(root: Path, **extra: Any) -> SweepConfig:
    return SweepConfig.model_validate(
        {
            "name": "t",
            "preset": "smoke",
            "overrides": [
                f"data.cache_dir={root / 'cache'}",
                f"train.checkpoint_dir={root / 'checkpoints'}",
                f"export.dir={root / 'exported'}",
                "train.progress=false",
            ],
            "grid": {
                "kinds": ["ae", "denoise"],
                "latent_dims": [None, 4],
                "corruptions": [{"kind": "none"}, {"kind": "gaussian", "mean": 0.0, "std": 0.2}],
            },
            **extra,
        }
    )


def test_grid_expands_and_lists_what_cannot_be_built(tmp_path: Path) -> None:
    cells, skipped = expand(_sweep(tmp_path))
    labels = [label for label, _ in cells]
    assert labels == [
        "ae-spatial-none",
        "ae-spatial-gaussian-mean0.0-std0.2",
        "ae-l4-none",
        "ae-l4-gaussian-mean0.0-std0.2",
        "denoise-spatial-gaussian-mean0.0-std0.2",
        "denoise-l4-gaussian-mean0.0-std0.2",
    ]
    assert [label for label, _ in skipped] == ["denoise-spatial-none", "denoise-l4-none"]
    assert all("noise corruption" in why for _, why in skipped)
    config = dict(cells)["ae-l4-none"]
    assert config.model.latent_dim == 4 and config.name == "t-ae-l4-none"


def test_bad_sweep_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("grid:\n  kinds: [ae, transformer]\n")
    with pytest.raises(ConfigError, match=r"grid\.kinds\.1"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "missing.yaml")


def test_shipped_sweep_file_is_valid() -> None:
    cells, skipped = expand(load_sweep(ROOT / "sweeps" / "digits-grid.yaml"))
    assert len(cells) == 6 and len(skipped) == 2


@pytest.mark.slow
def test_sweep_nests_child_runs_ranks_them_and_caps_concurrency(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.sweep import comparison_sweep

    sweep = _sweep(
        tmp_path,
        grid={"kinds": ["ae", "denoise"], "latent_dims": [None],
              "corruptions": [{"kind": "none"}, {"kind": "gaussian", "mean": 0.0, "std": 0.2}]},
        max_concurrent=2,
    )  # fmt: skip
    settings = sqlite_settings(tmp_path)
    result = comparison_sweep(sweep, settings)

    ranking = result["ranking"]
    assert [row["rank"] for row in ranking] == [1, 2, 3]
    scores = [row["test_psnr"] for row in ranking]
    assert scores == sorted(scores, reverse=True)
    assert [label for label, _ in result["skipped"]] == ["denoise-spatial-none"]

    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    parent = client.get_run(result["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_test_psnr"] == pytest.approx(scores[0], abs=1e-4)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.info.run_id for c in children) == sorted(row["run_id"] for row in ranking)
    assert all(c.info.status == "FINISHED" and "test_psnr" in c.data.metrics for c in children)
    assert "ranking.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    # Never more than max_concurrent cells training at once (MLflow run start/end times).
    spans = [(c.info.start_time, c.info.end_time) for c in children]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 2
