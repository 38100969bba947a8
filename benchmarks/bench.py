"""`make bench`: training speed, pipeline overhead, inference engines and scaling → BENCHMARKS.md.

A measurement, not a test. Each table compares its contenders side by side in one run and
reports ratios, because absolute times drift with whatever else shares the cores. The data is
the MNIST subset when `--data-root` holds one (MNIST/raw), else scikit-learn's digits at 28×28
(bundled, so the command works offline on a fresh machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.serve import machine
from components.config import RunConfig
from components.presets import load_config


def data_overrides(data_root: Path | None, cache: Path) -> list[str]:
    base = ["data.image_size=28", f"data.cache_dir={cache}"]
    if data_root is not None and (data_root / "MNIST" / "raw").is_dir():
        return [*base, "data.name=mnist", f"data.root={data_root}"]
    return [*base, "data.name=digits"]


def lesson_config(overrides: list[str], work: Path, *extra: str) -> RunConfig:
    return load_config(
        "lesson-ae",
        overrides=[*overrides, "name=bench-lesson-ae", f"export.dir={work / 'exported'}",
                   f"train.checkpoint_dir={work / 'checkpoints'}", "train.progress=false",
                   "train.resume=false", *extra],  # timings: never reuse an earlier round's checkpoint
    )  # fmt: skip


def training_section(overrides: list[str], work: Path, epochs: int, rounds: int) -> list[str]:
    from benchmarks.bench_training import compare_loops
    from components.data import ingest

    cfg = lesson_config(overrides, work, "data.val_fraction=0")
    splits = ingest(cfg.data).splits
    return [
        f"## 1. Training throughput: lesson conv autoencoder, {len(splits.train):,} {cfg.data.name} images, "
        f"batch {cfg.train.batch_size}, {epochs} epochs, {rounds} interleaved rounds",
        "",
        "The lesson-style loop: a torchvision dataset converting each image with `ToTensor` as it is drawn,",
        "`DataLoader(batch_size=256, shuffle=True)`, NCHW, the notebook's layer order (ReLU then pool,",
        "upsampling as its own op). aeflow's `fit`: the set as one tensor, batches drawn by index,",
        "corruption in batch, channels_last, pooling before the ReLU and each ×2 upsample folded into",
        "the next conv (the same function). Same seed and initial weights, epochs and data; validation",
        "off in both. Test loss: BCE per pixel on the held-out test images. Rows below the first in",
        "each round show where the speed comes from.",
        "",
        *compare_loops(cfg, splits, epochs, rounds),
    ]


def pipeline_section(overrides: list[str], work: Path, target_seconds: float) -> list[str]:
    from benchmarks.bench_pipeline import compare_pipeline, epochs_for

    cfg = lesson_config(overrides, work)
    epochs = epochs_for(cfg, target_seconds)
    cfg = lesson_config(overrides, work, f"train.epochs={epochs}")
    return [
        f"## 2. Pipeline overhead: {epochs} epochs (about {target_seconds:.0f} s of training)",
        "",
        "The `train-autoencoder` flow with MLflow on a fresh SQLite file vs `fit` alone, same config.",
        "",
        *compare_pipeline(cfg, work),
    ]


def inference_section(overrides: list[str], work: Path, budget_s: float, rounds: int) -> list[str]:
    from benchmarks.bench_inference import compare_engines
    from components.data import ingest
    from components.export import export_model
    from components.training import fit

    cfg = lesson_config(overrides, work, "train.epochs=5", "name=bench-inference")
    splits = ingest(cfg.data).splits
    trained = fit(cfg, splits)
    folder = export_model(trained.model, cfg, splits.image_shape).folder
    calibration = splits.train[:512].numpy()
    test = splits.test[:256].numpy()
    return [
        "## 3. Inference: lesson autoencoder (5 epochs trained), encode + decode in one graph",
        "",
        f"Median images/s per call ({budget_s:g} s per engine and batch; median of {rounds} rounds).",
        "Baseline: a default session on the lesson-order graph (benchmarks/lesson_graph.py). aeflow's",
        "graph pools before the ReLU and exports each ×2 upsample + conv as one transposed conv (same",
        "function). `AutoencoderRuntime` as served: batches of 16 or more cut into slices run side by",
        "side on single-threaded sessions, one worker per core (components/runtime_batches.py); and",
        "with `batch_workers=1`, every call on onnxruntime's own intra-op threads.",
        "",
        *compare_engines(trained.model, folder, calibration, test, budget_s, rounds),
    ]


def scaling_section(overrides: list[str], epochs: int) -> list[str]:
    from benchmarks.bench_scaling import scaling_tables
    from components.data import ingest
    from components.presets import load_config as load

    full = len(ingest(load("lesson-ae", overrides=overrides).data).splits.train)
    return [
        f"## 4. How cost grows ({epochs} epochs per point, each in a fresh process; first epoch not timed)",
        "",
        *scaling_tables(overrides, full, epochs),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--data-root", type=Path, default=None, help="folder holding MNIST/raw (optional)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per loop in table 1")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds in tables 1 and 3")
    parser.add_argument("--pipeline-seconds", type=float, default=120.0, help="training time in table 2")
    parser.add_argument("--engine-seconds", type=float, default=1.0, help="time per engine and batch")
    parser.add_argument("--scaling-epochs", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=["training", "pipeline", "inference", "scaling"])
    args = parser.parse_args()
    sections = args.only or ["training", "pipeline", "inference", "scaling"]
    started = time.perf_counter()
    header = machine()
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu only"
    with tempfile.TemporaryDirectory(prefix="aeflow-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
        overrides = data_overrides(args.data_root, work / "cache")
        torch.manual_seed(0)
        np.random.seed(0)
        parts: list[str] = []
        if "training" in sections:
            parts += [*training_section(overrides, work, args.epochs, args.rounds), ""]
        if "pipeline" in sections:
            parts += [*pipeline_section(overrides, work, args.pipeline_seconds), ""]
        if "inference" in sections:
            parts += [*inference_section(overrides, work, args.engine_seconds, args.rounds), ""]
        if "scaling" in sections:
            parts += [*scaling_section(overrides, args.scaling_epochs), ""]
    text = "\n".join([
        "# Benchmarks (`make bench`)", "", *header,
        f"- torch threads: {torch.get_num_threads()}; accelerator: {device}",
        f"- data: {' '.join(o for o in overrides if 'cache_dir' not in o)}",
        f"- whole run: {time.perf_counter() - started:.0f} s", "", *parts,
    ])  # fmt: skip
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
