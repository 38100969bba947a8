"""Rebuild an export folder from the MLflow model registry, for `AutoencoderRuntime.load("models:/…")`.

The pipeline registers the encoder, the decoder and the whole model as three registered models
(names from mlflow.yml), each logged with the manifest as an extra file. Any one of the three
names, at an alias or a version, identifies the run; the other two graphs are the versions that
run registered. The downloaded graphs are byte-identical to the export, so the manifest's
sha256 checks still apply when the runtime opens the rebuilt folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.settings import load_mlflow_settings

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class RegistryError(ValueError):
    """A `models:/` URI that is malformed, unknown to the registry, or not an aeflow export."""


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of `models:/<name>@<alias>` or `models:/<name>/<version>`."""
    match = _URI.match(uri)
    if not match:
        raise RegistryError(f"{uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return match["name"], match["alias"], match["version"]


def fetch_registered_export(uri: str, tracking_uri: str | None = None, dest: Path | None = None) -> Path:
    """Download the three graphs and the manifest of the run behind `uri` into one export folder."""
    name, alias, version = parse_registry_uri(uri)
    tracking = tracking_uri or load_mlflow_settings().tracking_uri
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    try:
        if alias:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, str(version))
    except MlflowException as err:
        raise RegistryError(f"{uri} is not in the registry at {tracking}: {err.message}") from None
    run_versions = client.search_model_versions(f"run_id = '{found.run_id}'")
    by_role: dict[str, tuple[int, str]] = {}
    for candidate in run_versions:
        logged = client.get_logged_model(str(candidate.source).removeprefix("models:/"))
        number = int(candidate.version)
        if logged.name not in by_role or number > by_role[logged.name][0]:
            by_role[logged.name] = (number, logged.artifact_location)
    missing = {"encoder", "decoder", "model"} - set(by_role)
    if missing:
        raise RegistryError(
            f"{uri}: run {found.run_id} registered no {', '.join(sorted(missing))} graph; expected the three "
            "graphs `aeflow run` registers"
        )
    folder = dest or Path(tempfile.mkdtemp(prefix=f"aeflow-{name}-v{found.version}-"))
    folder.mkdir(parents=True, exist_ok=True)
    for role, (_, location) in sorted(by_role.items()):
        local = Path(download_artifacts(artifact_uri=location, tracking_uri=tracking))
        manifest = local / "extra_files" / "manifest.json"
        if not manifest.is_file():
            raise RegistryError(
                f"{uri}: the {role} graph was logged without its manifest; run `aeflow run` again to "
                "register it with one"
            )
        shutil.copyfile(local / "model.onnx", folder / f"{role}.onnx")
        shutil.copyfile(manifest, folder / "manifest.json")
    return folder
