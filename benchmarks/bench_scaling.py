"""How training cost grows: seconds per epoch and peak memory against set size and image size.

Each point trains in a fresh process (`python -m benchmarks.bench_scaling --point '<json>'`), so
its peak resident memory is its own and not the high-water mark of everything run before it.
Image sizes use the folder dataset: scikit-image's bundled sample photographs, cut into patches.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from components.data import ingest
from components.presets import load_config
from components.training import fit

SAMPLE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text")


def write_sample_photos(folder: Path) -> Path:
    """scikit-image's sample images (shipped in the wheel, no download) as PNGs in `folder`."""
    from skimage import data as samples

    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_PHOTOS:
        Image.fromarray(np.asarray(getattr(samples, name)())).save(folder / f"{name}.png")
    return folder


def _peak_rss_mib() -> float:
    """VmHWM: this process image's peak. (getrusage's ru_maxrss keeps the parent's peak across exec.)"""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_point(overrides: list[str], epochs: int) -> dict[str, Any]:
    """Train the lesson conv autoencoder; median epoch time (first epoch excluded) and peak memory."""
    cfg = load_config(
        "lesson-ae",
        overrides=[*overrides, f"train.epochs={epochs}", "train.progress=false", "train.resume=false"],
    )
    splits = ingest(cfg.data).splits
    result = fit(cfg, splits)
    steady = result.history[1:] or result.history
    peak_rss_mib = _peak_rss_mib()
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "train_images": len(splits.train),
        "image_size": cfg.data.image_size,
        "seconds_per_epoch": float(np.median([r.seconds for r in steady])),
        "peak_rss_mib": peak_rss_mib,
        "cuda_peak_mib": cuda_peak,
        "device": result.device,
    }


def _in_fresh_process(overrides: list[str], epochs: int) -> dict[str, Any]:
    point = json.dumps({"overrides": overrides, "epochs": epochs})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_scaling", "--point", point],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scaling point {overrides} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _row(label: str, point: dict[str, Any], base: dict[str, Any]) -> str:
    cuda = f"{point['cuda_peak_mib']:.0f}" if point["cuda_peak_mib"] is not None else "–"
    seconds = point["seconds_per_epoch"]
    growth = seconds / base["seconds_per_epoch"]
    return (
        f"| {label} | {point['train_images']:,} | {point['image_size']} | {seconds:.2f} | "
        f"{growth:.2f}× | {point['peak_rss_mib']:.0f} | {cuda} |"
    )


def scaling_tables(data_overrides: list[str], full_size: int, epochs: int) -> list[str]:
    header = [
        "| point | training images | image size | s / epoch | × first row | peak RSS MiB | CUDA peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = ["### Set size (lesson autoencoder, 28×28)", "", *header]
    points = []
    for multiple in (1, 2, 4):
        limit = max(10, full_size * multiple // 4)
        points.append(_in_fresh_process([*data_overrides, f"data.limit={limit}"], epochs))
        rows.append(_row(f"{multiple}×", points[-1], points[0]))
        print(rows[-1], flush=True)
    rows += ["", "### Image size (folder dataset: scikit-image sample photos, 48 patches each)", "", *header]
    with tempfile.TemporaryDirectory(prefix="aeflow-photos-") as tmp:
        photos = write_sample_photos(Path(tmp) / "photos")
        sized = []
        for size in (28, 64, 128):
            overrides = [
                "data.name=folder", f"data.root={photos}", f"data.image_size={size}", "data.patches=48",
                "data.channels=1", f"data.cache_dir={Path(tmp) / 'cache'}",
            ]  # fmt: skip
            sized.append(_in_fresh_process(overrides, epochs))
            rows.append(_row(f"{size}×{size}", sized[-1], sized[0]))
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--point", required=True, help="JSON: {overrides: [...], epochs: N}")
    args = parser.parse_args()
    point = json.loads(args.point)
    print(json.dumps(train_point(point["overrides"], point["epochs"])))


if __name__ == "__main__":
    main()
