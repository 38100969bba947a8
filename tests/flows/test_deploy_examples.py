"""The scale-out examples under deploy/ are checked with Prefect's and aeflow's own validators,
since no Kubernetes cluster, Postgres or object store is reachable from the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.server.schemas.actions import WorkPoolCreate
from prefect.utilities.templating import apply_values
from prefect.workers.base import BaseJobConfiguration

from components.config import RunConfig
from flows.settings import load_mlflow_settings
from flows.sweep import SweepConfig, expand

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TEMPLATE: dict[str, Any] = json.loads((DEPLOY / "k8s-work-pool.json").read_text())
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load((DEPLOY / "prefect-k8s.yaml").read_text())["deployments"]


def _render(job_variables: dict[str, Any]) -> dict[str, Any]:
    """What a worker fills in: the variables' defaults, overridden by the deployment's job variables."""
    defaults = BaseJobConfiguration._get_base_config_defaults(TEMPLATE["variables"]["properties"])
    rendered: dict[str, Any] = apply_values(TEMPLATE["job_configuration"], defaults | job_variables)
    return rendered


def test_work_pool_template_passes_prefects_own_validation() -> None:
    pool = WorkPoolCreate(name="aeflow-k8s-gpu", type="kubernetes", base_job_template=TEMPLATE)
    assert set(pool.base_job_template) == {"job_configuration", "variables"}
    broken = json.loads(json.dumps(TEMPLATE))
    del broken["variables"]["properties"]["gpu_count"]
    with pytest.raises(ValueError, match="gpu_count"):
        WorkPoolCreate(name="x", type="kubernetes", base_job_template=broken)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_rendered_job_asks_for_the_gpus_the_training_uses(deployment: dict[str, Any]) -> None:
    pool = deployment["work_pool"]
    assert pool["name"] == "aeflow-k8s-gpu"
    assert set(pool["job_variables"]) <= set(TEMPLATE["variables"]["properties"])
    manifest = _render(pool["job_variables"])["job_manifest"]
    # What prefect-kubernetes requires of a Job manifest it patches.
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["name"] == "prefect-job"
    assert container["image"] == pool["job_variables"]["image"]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus == pool["job_variables"]["gpu_count"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]

    parameters = deployment["parameters"]
    if "config" in parameters:  # a training: its DDP processes are the Job's GPUs
        cfg = RunConfig.model_validate(parameters["config"])
        assert cfg.train.strategy == "ddp" and cfg.train.device == "cuda"
        assert cfg.train.processes == gpus
    else:
        sweep = SweepConfig.model_validate(parameters["sweep"])
        assert sweep.runner == "dask" and sweep.dask.address
        assert len(expand(sweep)[0]) == 6


def test_remote_mlflow_settings_parse_and_let_the_server_place_artifacts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_mlflow_settings(DEPLOY / "mlflow-remote.yml")
    assert settings.tracking_uri == "http://mlflow.aeflow.svc.cluster.local:5000"
    assert settings.is_remote
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com")
    assert load_mlflow_settings(DEPLOY / "mlflow-remote.yml").tracking_uri == "https://mlflow.example.com"
