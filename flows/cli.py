"""`aeflow` command line: `aeflow run`, `aeflow presets`, and the inference commands of `flows.cli_infer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import flows  # noqa: F401  (sets Prefect's environment defaults before prefect is imported)
from components.config import RunConfig
from components.presets import PRESETS, ConfigError, load_config
from flows import cli_infer, cli_ops
from flows.cli_models import models_app
from flows.summary import comparison_lines

app = typer.Typer(
    help="Train, evaluate, export and track autoencoders (Prefect + MLflow + ONNX).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@app.command()
def run(
    preset: Annotated[str | None, typer.Option(help=f"Starting config: {', '.join(PRESETS)}.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file layered over the preset.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one value, e.g. --set train.epochs=5 (repeatable)."),
    ] = None,
) -> None:
    """Run the whole pipeline: ingest, corrupt, train, evaluate, export to ONNX, track in MLflow."""
    # Imported here, not at the top: `aeflow serve` and the inference commands then never load torch.
    from components.data import DatasetError, check_source, ingest
    from components.photo_eval import load_images
    from flows.settings import load_mlflow_settings
    from flows.tracking import Tracker, TrackingUnavailableError

    # Everything a user can get wrong is checked before the flow starts: once it has, MLflow holds a
    # (failed) run and the export folder may exist. The order keeps the cheap checks first.
    try:
        cfg: RunConfig = load_config(preset, config, set_ or [])
        settings = load_mlflow_settings()
        check_source(cfg.data)
        if cfg.eval.photo_folder is not None:
            if not cfg.eval.photo_folder.is_dir():
                raise DatasetError(
                    f"eval.photo_folder {cfg.eval.photo_folder} does not exist; fix or unset it"
                )
            load_images(
                cfg.eval.photo_folder
            )  # a photo too small to score stops the run now, not after training
        if settings.is_remote:  # a probe over HTTP writes nothing; a local SQLite file is created later
            Tracker(settings).check_reachable()
        # Decode the data now (the flow's ingest step then reads the cache): a corrupt image stops
        # the run here, naming the file, before any MLflow run or export exists.
        ingest(cfg.data)
    except (ConfigError, DatasetError, TrackingUnavailableError) as err:
        raise _fail(str(err)) from None

    from components.training import TrainingDivergedError
    from flows.pipeline import train_autoencoder

    try:
        result = train_autoencoder(cfg, settings)
    except (DatasetError, TrainingDivergedError, TrackingUnavailableError) as err:
        raise _fail(str(err)) from None
    metrics = result["metrics"]
    folder = Path(result["export_dir"])
    typer.secho(f"\n{cfg.name}: done.", fg=typer.colors.GREEN, bold=True)
    typer.echo(
        f"  test PSNR {metrics['test_psnr']:.2f} dB (baseline {metrics['baseline_psnr']:.2f} dB), "
        f"SSIM {metrics['test_ssim']:.3f} (baseline {metrics['baseline_ssim']:.3f}), "
        f"MSE {metrics['test_mse']:.5f}"
    )
    for label, value in comparison_lines(metrics):
        typer.echo(f"  {label}: {value}")
    graphs = ", ".join(str(folder / name) for name in ("encoder.onnx", "decoder.onnx", "model.onnx"))
    typer.echo(f"  ONNX graphs:   {graphs}")
    typer.echo(f"  manifest:      {folder / 'manifest.json'}")
    typer.echo(f"  load it as:    {folder.parent} (its `latest` link → {folder.name})")
    typer.echo(f"  MLflow:        {result['tracking_uri']} (run {result['run_id']})")
    versions = ", ".join(f"{role} v{v}" for role, v in result["registered_versions"].items())
    typer.echo(f"  registered:    {versions}")
    champion = result["champion"]
    verdict = "promoted" if champion["promoted"] else "kept the earlier one"
    typer.echo(f"  champion:      {verdict}: {champion['reason']}")
    typer.echo(f"  browse runs:   {result['ui_command']}")


@app.command()
def presets() -> None:
    """List the named configs `aeflow run --preset` accepts."""
    for name, raw in PRESETS.items():
        cfg = RunConfig.model_validate(raw)
        typer.echo(
            f"{name:16} data={cfg.data.name} corruption={cfg.corruption.kind} "
            f"model={cfg.model.kind}{cfg.model.channels} epochs={cfg.train.epochs}"
        )


for _command in ("encode", "reconstruct", "denoise", "upscale", "generate", "serve"):
    app.command(_command)(getattr(cli_infer, _command))
for _command in ("sweep", "batch", "server", "deploy", "worker"):
    app.command(_command)(getattr(cli_ops, _command))


if __name__ == "__main__":
    app()
