"""The model registry's champion alias: who holds it, who may take it, and how to undo a move.

Every run registers a new version of its `model`, `encoder` and `decoder` graphs. The alias
(`champion` by default) points at the versions downstream apps load (`models:/<name>@champion`).
It moves only when the new run beats the current champion on the configured metric, and both are
scored here on the same fixed evaluation set: the incumbent's own ONNX graph is downloaded and
run, so an old number logged on other data can never decide. The three roles always move
together, and each move is remembered in a registered-model tag, so `rollback` can step back.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.onnx_scoring import IncomparableModelError, score_onnx_model
from flows.settings import MlflowSettings

HISTORY_TAG = "aeflow.alias_history"  # JSON list of earlier versions that held the alias
ROLES = ("model", "encoder", "decoder")


class AliasError(RuntimeError):
    """A registry request that cannot be carried out; the message says what exists instead."""


@dataclass(frozen=True)
class ChampionDecision:
    promoted: bool
    reason: str
    metric: str
    challenger_score: float
    incumbent_score: float | None
    incumbent_version: str | None
    champion_versions: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_for(settings: MlflowSettings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def set_champion(client: MlflowClient, names: dict[str, str], versions: dict[str, str], alias: str) -> None:
    """Point the alias of every role at `versions`, remembering where it pointed before."""
    for role, name in names.items():
        previous = _alias_version(client, name, alias)
        if previous == versions[role]:
            continue
        if previous is not None:
            history = [*_history(client, name), previous]
            client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        client.set_registered_model_alias(name, alias, versions[role])


def versions_of_run(client: MlflowClient, names: dict[str, str], model_version: str) -> dict[str, str]:
    """The encoder and decoder versions registered by the run that registered `model_version`."""
    try:
        run_id = client.get_model_version(names["model"], model_version).run_id
    except MlflowException:
        raise AliasError(f"{names['model']} has no version {model_version}") from None
    found = {"model": model_version}
    for role in ("encoder", "decoder"):
        matches = client.search_model_versions(f"name='{names[role]}' and run_id='{run_id}'")
        if not matches:
            raise AliasError(f"run {run_id} registered no {names[role]} version to move with it")
        found[role] = str(max(int(v.version) for v in matches))
    return found


def promote(client: MlflowClient, names: dict[str, str], model_version: str, alias: str) -> dict[str, str]:
    versions = versions_of_run(client, names, model_version)
    set_champion(client, names, versions, alias)
    return versions


def rollback(client: MlflowClient, names: dict[str, str], alias: str) -> dict[str, str]:
    """Give the alias back to the versions that held it before the last move."""
    restored: dict[str, str] = {}
    for role, name in names.items():
        history = _history(client, name)
        if not history:
            raise AliasError(f"{name}: no earlier {alias!r} version to roll back to")
        restored[role] = history[-1]
    for role, name in names.items():
        client.set_registered_model_alias(name, alias, restored[role])
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(_history(client, name)[:-1]))
    return restored


def decide_champion(
    settings: MlflowSettings,
    names: dict[str, str],
    new_versions: dict[str, str],
    challenger_metrics: dict[str, float],
    eval_inputs: torch.Tensor,
    eval_targets: torch.Tensor,
    eval_labels: torch.Tensor | None,
) -> ChampionDecision:
    """Score the incumbent on this run's evaluation set and move the alias if the new run wins."""
    policy = settings.champion
    client = client_for(settings)
    challenger = float(challenger_metrics[policy.metric])
    incumbent_version = _alias_version(client, names["model"], policy.alias)

    def decided(promoted: bool, reason: str, incumbent: float | None = None) -> ChampionDecision:
        if promoted:
            set_champion(client, names, new_versions, policy.alias)
        current = {role: _alias_version(client, name, policy.alias) or "" for role, name in names.items()}
        return ChampionDecision(
            promoted, reason, policy.metric, challenger, incumbent, incumbent_version, current
        )

    if incumbent_version is None:
        return decided(True, f"no {policy.alias!r} yet: version {new_versions['model']} takes the alias")
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{names['model']}/{incumbent_version}", dst_path=tmp
        )
        graph = next(Path(folder).rglob("*.onnx"), None)
        if graph is None:
            return decided(False, f"version {incumbent_version} has no ONNX graph to score; alias kept")
        try:
            scores = score_onnx_model(graph, eval_inputs, eval_targets, eval_labels)
        except IncomparableModelError as err:
            return decided(False, f"the champion cannot run on this evaluation set ({err}); alias kept")
    incumbent = scores[policy.metric.removeprefix("test_")]
    verb = "higher" if policy.greater_is_better else "lower"
    if policy.beats(challenger, incumbent):
        return decided(
            True, f"{policy.metric} {challenger:.4f} beats {incumbent:.4f} ({verb} is better)", incumbent
        )
    return decided(
        False,
        f"{policy.metric} {challenger:.4f} does not beat the champion's {incumbent:.4f} ({verb} is better)",
        incumbent,
    )


def model_table(client: MlflowClient, alias: str, metric: str) -> list[dict[str, str]]:
    """One row per registered model: latest version, the alias holder and its run's metric."""
    rows = []
    for model in client.search_registered_models(order_by=["name ASC"]):
        versions = client.search_model_versions(f"name='{model.name}'")
        latest = max((int(v.version) for v in versions), default=0)
        holder = _alias_version(client, model.name, alias)
        score = ""
        if holder is not None:
            run_id = client.get_model_version(model.name, holder).run_id
            value = client.get_run(run_id).data.metrics.get(metric) if run_id else None
            score = "" if value is None else f"{value:.4f}"
        rows.append(
            {
                "name": model.name,
                "versions": str(len(versions)),
                "latest": str(latest),
                alias: holder or "-",
                metric: score,
                "previous": ",".join(_history(client, model.name)) or "-",
            }
        )
    return rows
