"""The project's MLflow settings, read from `mlflow.yml` and the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from flows import PROJECT_ROOT


class RegisteredModelNames(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "{name}"
    encoder: str = "{name}-encoder"
    decoder: str = "{name}-decoder"

    def for_run(self, name: str) -> dict[str, str]:
        return {
            "model": self.model.format(name=name),
            "encoder": self.encoder.format(name=name),
            "decoder": self.decoder.format(name=name),
        }


class ChampionPolicy(BaseModel):
    """Which alias downstream apps load, and the test metric a challenger must beat to take it."""

    model_config = ConfigDict(extra="forbid")
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    metric: Literal["test_psnr", "test_ssim", "test_mse"] = "test_psnr"

    @property
    def greater_is_better(self) -> bool:
        return self.metric != "test_mse"

    def beats(self, challenger: float, incumbent: float) -> bool:
        """Strictly better by more than float noise: torch and onnxruntime scores of the same
        weights differ around the 7th digit, and a rerun must not move the alias on that."""
        margin = 1e-6 * max(abs(challenger), abs(incumbent), 1.0)
        if self.greater_is_better:
            return challenger > incumbent + margin
        return challenger < incumbent - margin


class MlflowSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "./mlartifacts"
    experiment_name: str = "aeflow"
    registered_models: RegisteredModelNames = Field(default_factory=RegisteredModelNames)
    champion: ChampionPolicy = Field(default_factory=ChampionPolicy)

    @property
    def is_remote(self) -> bool:
        """An MLflow server: it decides where artifacts go (proxied over HTTP)."""
        return self.tracking_uri.startswith(("http://", "https://"))

    def resolved(self, base: Path) -> MlflowSettings:
        """Relative SQLite paths and artifact folders made absolute against `base`, env applied."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
            uri = prefix + str((base / uri[len(prefix) :]).resolve())
        artifacts = self.artifact_location
        if "://" not in artifacts:
            artifacts = (base / artifacts).resolve().as_uri()
        return self.model_copy(update={"tracking_uri": uri, "artifact_location": artifacts})


def settings_file() -> Path:
    """`AEFLOW_MLFLOW_CONFIG`, else ./mlflow.yml, else the one at the project root."""
    explicit = os.environ.get("AEFLOW_MLFLOW_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path.cwd() / "mlflow.yml"
    return local if local.is_file() else PROJECT_ROOT / "mlflow.yml"


def load_mlflow_settings(path: Path | None = None) -> MlflowSettings:
    path = path or settings_file()
    raw = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return MlflowSettings.model_validate(raw or {}).resolved(path.resolve().parent)
