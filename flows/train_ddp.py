"""The per-process entry point of a DDP training run: `torchrun ... -m flows.train_ddp ...`.

torchrun starts one copy per device and sets RANK / WORLD_SIZE / LOCAL_RANK; each copy joins the
process group and runs the ordinary `fit()`, which trains its slice of every global batch. Only
rank 0 writes the checkpoint, logs the epochs (to MLflow when given a run id) and writes the
result file the flow reads back. The flow's train task launches this (`flows.ddp_launch`); on
several nodes, start it yourself on every node with the same arguments (docs/scaling.md).

Deliberately no Prefect here: the workers are plain processes, the flow stays in the parent.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from components.data import ImageSplits, ingest
from components.distributed import process_group
from components.presets import ConfigError, load_config
from components.training import EpochReport, fit, select_device


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flows.train_ddp", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", help="starting config, as for `aeflow run`")
    parser.add_argument("--config", type=Path, help="YAML/JSON config layered over the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    parser.add_argument("--data", type=Path, help="ingested splits (ImageSplits file); default: ingest")
    parser.add_argument("--result", type=Path, help="rank 0 writes checkpoint, seconds, history here")
    parser.add_argument("--mlflow-settings", type=Path, help="MlflowSettings JSON, with --run-id")
    parser.add_argument("--run-id", help="MLflow run that rank 0 logs the epochs to")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.preset, args.config, [*args.overrides, "train.strategy=ddp"])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = select_device(cfg.train.device)
    with process_group(device, cfg.train.dist_backend) as rank:
        splits = ImageSplits.load(args.data) if args.data else ingest(cfg.data).splits
        epochs = None  # rank 0's MLflow epoch metrics, sent in batches like a single-process run's
        if rank.is_main and args.run_id:
            from flows.settings import MlflowSettings
            from flows.tracking import EpochLog, Tracker

            settings = MlflowSettings.model_validate_json(args.mlflow_settings.read_text())
            epochs = EpochLog(Tracker(settings), args.run_id)

        def on_epoch(report: EpochReport) -> None:
            print(
                f"epoch {report.epoch}/{report.epochs}: train loss {report.train_loss:.5f}, "
                f"val loss {report.val_loss:.5f}, {report.images_per_second:.0f} images/s "
                f"({rank.world_size} processes)",
                flush=True,
            )
            if epochs is not None:
                epochs.add(report)

        try:
            result = fit(cfg, splits, on_epoch=on_epoch if rank.is_main else None)
        finally:
            if epochs is not None:
                epochs.flush()  # a failed run keeps the curve up to its last finished epoch
        if rank.is_main and args.result:
            payload = {
                "checkpoint": str(result.checkpoint),
                "seconds": result.seconds,
                "device": result.device,
                "world_size": rank.world_size,
                "history": [asdict(report) for report in result.history],
            }
            args.result.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
