"""`aeflow server | worker | deploy`: the long-running side of the project, on this machine.

Schedules only fire against a real Prefect server, and sharing runs between people wants a real
MLflow server; both are started here on 127.0.0.1 with their state (SQLite) under the project.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from flows import PROJECT_ROOT

WORK_POOL = "aeflow-process"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def _api_url() -> str:
    return os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")


def server(
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it on this machine.")] = (
        "127.0.0.1"
    ),
    prefect_port: Annotated[int, typer.Option(help="Prefect API and UI port.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow tracking server and UI port.")] = 5000,
) -> None:
    """Start a Prefect server and an MLflow tracking server (SQLite under the project); Ctrl-C stops both."""
    state = PROJECT_ROOT
    commands = {
        "prefect": [_tool("prefect"), "server", "start", "--host", host, "--port", str(prefect_port)],
        "mlflow": [
            _tool("mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
            "--artifacts-destination", str(state / "mlartifacts"),
            "--host", host, "--port", str(mlflow_port),
        ],
    }  # fmt: skip
    processes = {name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in commands.items()}
    typer.echo(
        f"Prefect UI http://{host}:{prefect_port}  ·  MLflow UI http://{host}:{mlflow_port}\n"
        "In another shell, point the tools at them, register the deployments and start a worker:\n"
        f"  export PREFECT_API_URL=http://{host}:{prefect_port}/api MLFLOW_TRACKING_URI=http://{host}:{mlflow_port}\n"
        "  aeflow deploy && aeflow worker"
    )
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(1)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        typer.secho(f"error: {', '.join(dead)} server exited; stopping the other", fg="red", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            process.wait(30)


def _prefect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": _api_url(), "AEFLOW_PROJECT_DIR": str(PROJECT_ROOT)}
    return subprocess.run([_tool("prefect"), *args], cwd=PROJECT_ROOT, env=env, text=True, check=False)


def deploy() -> None:
    """Create the process work pool if needed and register every deployment of prefect.yaml."""
    pools = subprocess.run(
        [_tool("prefect"), "work-pool", "inspect", WORK_POOL],
        env={**os.environ, "PREFECT_API_URL": _api_url()}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if pools.returncode != 0:
        created = _prefect("work-pool", "create", WORK_POOL, "--type", "process")
        if created.returncode != 0:
            typer.secho(f"error: cannot create work pool {WORK_POOL} at {_api_url()}; is "
                        "`aeflow server` running?", fg="red", err=True)  # fmt: skip
            raise typer.Exit(2)
    result = _prefect("--no-prompt", "deploy", "--all")
    raise typer.Exit(result.returncode)


def worker(
    limit: Annotated[int, typer.Option(help="Flow runs at once.")] = 1,
    run_once: Annotated[bool, typer.Option(help="Take what is due now, run it, and exit.")] = False,
) -> None:
    """Run the work pool's flow runs as processes on this machine, from this checkout."""
    args = ["worker", "start", "--pool", WORK_POOL, "--type", "process", "--limit", str(limit)]
    result = _prefect(*args, *(["--run-once"] if run_once else []))
    raise typer.Exit(result.returncode)


def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep YAML (see sweeps/digits-grid.yaml).")],
    runner: Annotated[
        str | None, typer.Option(help="Where cells run: threads or dask (default: the file's `runner`).")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="A running Dask scheduler (tcp://host:8786) instead of a LocalCluster.")
    ] = None,
) -> None:
    """Train a grid of kind × latent size × corruption and print the ranking."""
    from pydantic import ValidationError

    from components.presets import ConfigError
    from flows.sweep import SweepConfig, comparison_sweep, load_sweep
    from flows.tracking import TrackingUnavailableError

    try:
        config = load_sweep(file)
        changes = {"runner": runner or ("dask" if dask_address else None)}
        if dask_address:
            changes["dask"] = config.dask.model_copy(update={"address": dask_address}).model_dump()
        merged = config.model_dump() | {k: v for k, v in changes.items() if v is not None}
        try:
            config = SweepConfig.model_validate(merged)
        except ValidationError as err:
            raise ConfigError(f"--runner: {err.errors()[0]['msg']}") from None
        result = comparison_sweep(config)
    except (ConfigError, TrackingUnavailableError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"MLflow parent run {result['parent_run_id']}; {result['failed']} cell(s) failed")
    raise typer.Exit(1 if result["failed"] else 0)


def batch(
    input_dir: Annotated[Path, typer.Argument(help="Folder of png/jpg/bmp/npy files (recursive).")],
    model: Annotated[str, typer.Option(help="models:/<name>@<alias> or an exported/<name> folder.")] = (
        "models:/lesson-denoise@champion"
    ),
    out: Annotated[Path, typer.Option(help="Where codes, images and report.json go.")] = Path(
        "batch-outputs"
    ),
) -> None:
    """Encode and reconstruct a folder with the champion; already-processed files are skipped."""
    from pydantic import ValidationError

    from components.runtime import ModelFolderError
    from flows.batch import BatchInferenceRequest, batch_inference

    if not input_dir.is_dir():
        typer.secho(f"error: {input_dir} is not a folder; give a folder of png/jpg/bmp/npy files", fg="red",
                    err=True)  # fmt: skip
        raise typer.Exit(2)
    try:
        request = BatchInferenceRequest(model=model, input_dir=input_dir, output_dir=out)
        report = batch_inference(request)
    except (ValidationError, ModelFolderError, FileNotFoundError, ValueError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    for item in report["failed"]:
        typer.echo(f"  failed: {item['file']}: {item['error']}")
