"""Run the training step as a torchrun job and read back what rank 0 wrote.

The flow stays one process; only training fans out. The train task writes the run config to a
file, starts `python -m torch.distributed.run ... -m flows.train_ddp` (one worker per device,
`--standalone` on one node unless `train.torchrun_args` says otherwise), forwards the workers'
output to the task's log, and continues from the checkpoint rank 0 saved: evaluation, export and
registration are the same as for a single-process run.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.config import RunConfig
from components.training import EpochReport, TrainingDivergedError
from flows import PROJECT_ROOT
from flows.settings import MlflowSettings

# torchrun prefixes each worker's output with its rank; the last line of a traceback names the error.
_WORKER_ERROR = re.compile(r"^\[rank(\d+)\]:\s*([\w.]+(?:Error|Exception)): (.*)$")


class DistributedTrainingError(RuntimeError):
    """The torchrun job failed; the message carries its exit code and last lines of output."""


@dataclass(frozen=True)
class DistributedRun:
    """What the flow needs from a DDP training (the same names as `TrainResult`, without the model)."""

    checkpoint: Path
    seconds: float
    device: str
    world_size: int
    history: list[EpochReport] = field(default_factory=list)


def torchrun_command(cfg: RunConfig, work_dir: Path, run_id: str | None) -> list[str]:
    """The launcher command line; the files it names live in `work_dir`."""
    launch = cfg.train.torchrun_args or ["--standalone"]
    command = [
        sys.executable, "-m", "torch.distributed.run", *launch,
        f"--nproc-per-node={cfg.train.processes}",
        "-m", "flows.train_ddp",
        "--config", str(work_dir / "ddp-config.json"),
        "--result", str(work_dir / "ddp-result.json"),
    ]  # fmt: skip
    if run_id:
        command += ["--mlflow-settings", str(work_dir / "ddp-mlflow.json"), "--run-id", run_id]
    return command


def train_distributed(
    cfg: RunConfig,
    data_path: Path,
    work_dir: Path,
    settings: MlflowSettings | None,
    run_id: str | None,
    log: Callable[[str], None] = print,
) -> DistributedRun:
    """Train `cfg` under torchrun on the already ingested `data_path`; raises if any worker fails."""
    work_dir.mkdir(parents=True, exist_ok=True)
    # The workers' output goes to a log line by line: a progress bar would only be noise there.
    worker_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"progress": False})})
    (work_dir / "ddp-config.json").write_text(worker_cfg.model_dump_json(indent=2))
    result_file = work_dir / "ddp-result.json"
    result_file.unlink(missing_ok=True)
    if settings is not None and run_id:
        (work_dir / "ddp-mlflow.json").write_text(settings.model_dump_json())
    command = [*torchrun_command(cfg, work_dir, run_id if settings else None), "--data", str(data_path)]
    # Workers import this checkout's code, whatever the current folder or an installed copy says.
    paths = [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    log(f"launching {cfg.train.processes} DDP processes: {' '.join(command)}")
    tail: collections.deque[str] = collections.deque(maxlen=40)
    errors: list[tuple[str, str, str]] = []  # (rank, error type, message) as the workers printed them
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            log(line)
            if found := _WORKER_ERROR.match(line):
                errors.append((found[1], found[2], found[3]))
    if process.returncode != 0:
        for _, name, message in errors:
            if name.endswith("TrainingDivergedError"):
                raise TrainingDivergedError(message)
        # torchrun's own traceback fills the tail; the workers' error is what says what to fix.
        first = f"rank {errors[0][0]}: {errors[0][1]}: {errors[0][2]}" if errors else "no worker error seen"
        shown = "\n".join(tail)
        raise DistributedTrainingError(
            f"torchrun exited with {process.returncode}; {first}\nlast output:\n{shown}"
        )
    if not result_file.is_file():
        raise DistributedTrainingError(f"torchrun finished but rank 0 wrote no {result_file}")
    payload = json.loads(result_file.read_text())
    return DistributedRun(
        checkpoint=Path(payload["checkpoint"]),
        seconds=float(payload["seconds"]),
        device=str(payload["device"]),
        world_size=int(payload["world_size"]),
        history=[EpochReport(**report) for report in payload["history"]],
    )
