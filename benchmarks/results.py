"""Regenerate RESULTS.md: train every model kind through the real Prefect flow and tabulate.

    .venv/bin/python -m benchmarks.results --data-root ../shared/data/mnist [--only ae-16 vae-fc-2]

Each row is one run of the `train-autoencoder` flow (tracked in MLflow under the experiment
`aeflow-results`, so the runs can be compared in the MLflow UI). Each measured row is kept as
benchmarks/results/<row>.json; `--only` reruns some rows and keeps the others (two processes
with different `--only` lists can run side by side), and the markdown is always rebuilt from
the JSON files, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flows  # noqa: F401  (Prefect's environment defaults)
from benchmarks.results_report import render
from benchmarks.results_rows import ROWS, Row
from components.presets import load_config

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE.parent / "RESULTS.md"


def run_row(row: Row, data_root: str, work: Path, threads: int | None) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from flows.pipeline import train_autoencoder
    from flows.settings import load_mlflow_settings

    # MNIST rows read `--data-root`; the photo rows keep their preset's folder of photographs.
    on_mnist = load_config(row.preset).data.name == "mnist"
    cfg = load_config(
        row.preset,
        overrides=[
            f"name=results-{row.name}",
            *([f"data.root={data_root}"] if on_mnist else []),
            f"export.dir={work / 'exported'}",
            "train.progress=false",
            "train.resume=false",  # the table reports training times: never reuse a checkpoint
            *([f"train.num_threads={threads}"] if threads else []),
            *row.overrides,
        ],
    )
    settings = load_mlflow_settings().model_copy(update={"experiment_name": "aeflow-results"})
    result = train_autoencoder(cfg, settings)
    history = MlflowClient(settings.tracking_uri).get_metric_history(result["run_id"], "train_disc_loss")
    return {
        "row": row.name,
        "table": row.table,
        "note": row.note,
        "preset": row.preset,
        "overrides": row.overrides,
        "kind": cfg.model.kind,
        "architecture": cfg.model.architecture,
        "latent": cfg.model.latent_dim or "×".join(map(str, result_latent(result))),
        "epochs": cfg.train.epochs,
        "train_seconds": result["train_seconds"],
        "corruption": cfg.corruption.model_dump(mode="json"),
        "metrics": result["metrics"],
        "disc_loss_by_epoch": [m.value for m in sorted(history, key=lambda m: m.step)],
        "mlflow_run_id": result["run_id"],
        "environment": environment(),
    }


def result_latent(result: dict[str, Any]) -> list[int]:
    manifest = json.loads((Path(result["export_dir"]) / "manifest.json").read_text())
    return list(manifest["latent"]["shape"])


def environment() -> dict[str, str]:
    import torch

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def load_rows() -> dict[str, Any]:
    """Measured rows in the order of ROWS, with the environment most of them were measured in."""
    found = {p.stem: json.loads(p.read_text()) for p in RESULTS_DIR.glob("*.json")}
    rows = [found[row.name] for row in ROWS if row.name in found]
    machines = Counter(r["environment"]["machine"] for r in rows)
    common = next((r for r in rows if r["environment"]["machine"] == machines.most_common(1)[0][0]), None)
    return {"environment": common["environment"] if common else {}, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default="../shared/data/mnist", help="folder holding MNIST/raw")
    parser.add_argument("--only", nargs="*", help="rerun only these rows (names from results_rows.py)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per run (default: torch's)")
    parser.add_argument("--render-only", action="store_true", help="rebuild RESULTS.md from the JSON files")
    args = parser.parse_args()

    if not args.render_only:
        unknown = set(args.only or []) - {row.name for row in ROWS}
        if unknown:
            parser.error(f"unknown rows {sorted(unknown)}; known: {[row.name for row in ROWS]}")
        wanted = [row for row in ROWS if not args.only or row.name in args.only]
        work = Path(".cache/aeflow/results")
        RESULTS_DIR.mkdir(exist_ok=True)
        for row in wanted:
            print(f"=== {row.name}: preset {row.preset} {' '.join(row.overrides)}", flush=True)
            measured = run_row(row, args.data_root, work, args.threads)
            (RESULTS_DIR / f"{row.name}.json").write_text(json.dumps(measured, indent=1))
    RESULTS_MD.write_text(render(load_rows()))
    print(f"wrote {RESULTS_MD}")


if __name__ == "__main__":
    main()
