"""`aeflow models ...`: look at the registry and move the champion alias by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.settings import load_mlflow_settings

# flows.champion imports mlflow and torch: loaded inside the commands so `aeflow --help` stays quick.

models_app = typer.Typer(help="Registered models and their champion alias.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The run config's name, e.g. lesson-denoise.")]


def _print_table(rows: list[dict[str, str]]) -> None:
    if not rows:
        typer.echo("no registered models yet: `aeflow run` registers one")
        return
    widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
    typer.echo("  ".join(key.ljust(width) for key, width in widths.items()))
    for row in rows:
        typer.echo("  ".join(row[key].ljust(width) for key, width in widths.items()))


@models_app.command("list")
def list_models() -> None:
    """Every registered model: versions, which one holds the alias, its score, earlier holders."""
    from flows.champion import client_for, model_table

    settings = load_mlflow_settings()
    _print_table(model_table(client_for(settings), settings.champion.alias, settings.champion.metric))


@models_app.command("promote")
def promote_version(
    name: NameArg, version: Annotated[str, typer.Argument(help="Version of the `model` graph.")]
) -> None:
    """Give the alias to VERSION (and the encoder/decoder versions of the same run)."""
    from flows.champion import AliasError, client_for, promote

    settings = load_mlflow_settings()
    names = settings.registered_models.for_run(name)
    try:
        moved = promote(client_for(settings), names, version, settings.champion.alias)
    except AliasError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for role, v in moved.items():
        typer.echo(f"{names[role]}@{settings.champion.alias} -> version {v}")


@models_app.command("rollback")
def rollback_alias(name: NameArg) -> None:
    """Give the alias back to the versions that held it before the last move."""
    from flows.champion import AliasError, client_for, rollback

    settings = load_mlflow_settings()
    names = settings.registered_models.for_run(name)
    try:
        restored = rollback(client_for(settings), names, settings.champion.alias)
    except AliasError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for role, v in restored.items():
        typer.echo(f"{names[role]}@{settings.champion.alias} -> version {v} (rolled back)")
