"""prefect.yaml against a real `prefect server`: deploy, schedules create runs, a worker runs one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.flows.conftest import tiny_config
from tests.servers.processes import AEFLOW, BIN, CHECKOUT_ENV, free_port, mlflow_config, server_process

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        "PREFECT_HOME": str(root / "home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "ROOT": str(root),
    }
    env["AEFLOW_MLFLOW_CONFIG"] = str(mlflow_config(root, env["MLFLOW_TRACKING_URI"]))
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with server_process(command, f"{env['PREFECT_API_URL']}/health", root / "server.log", env, timeout_s=180):
        yield env


def _aeflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AEFLOW, *args], env={**os.environ, **CHECKOUT_ENV, **env}, cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


async def _read(env: dict[str, str]) -> tuple[list, list]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=env["PREFECT_API_URL"]) as client:
        return await client.read_deployments(), await client.read_flow_runs()


def test_deploy_schedules_and_a_worker_runs_a_flow(prefect_api: dict[str, str]) -> None:
    deployed = _aeflow(prefect_api, "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    deployments, runs = asyncio.run(_read(prefect_api))
    deadline = time.monotonic() + 120  # the server's scheduler service creates the runs on its loop
    while not any(r.state_name == "Scheduled" for r in runs) and time.monotonic() < deadline:
        time.sleep(2)
        deployments, runs = asyncio.run(_read(prefect_api))
    by_name = {d.name: d for d in deployments}
    assert set(by_name) == {"nightly-lesson-denoise", "weekly-comparison-sweep", "batch-inference"}
    nightly = by_name["nightly-lesson-denoise"]
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.work_pool_name == "aeflow-process"
    # The typed config is the parameter schema: the UI renders it as a form.
    assert "RunConfig" in nightly.parameter_openapi_schema.get("definitions", {})
    assert nightly.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
    scheduled = [r for r in runs if r.deployment_id == nightly.id and r.state_name == "Scheduled"]
    assert scheduled and all(r.expected_start_time.hour == 2 for r in scheduled)

    # Ask for one run now, with a tiny config, and let a worker take it.
    root = Path(prefect_api["ROOT"])
    cfg = tiny_config(root, "name=deployed-smoke")
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api["PREFECT_API_URL"]}):
        flow_run = run_deployment(
            "train-autoencoder/nightly-lesson-denoise",
            parameters={"config": cfg.model_dump(mode="json")},
            timeout=0,
        )
    worked = _aeflow(prefect_api, "worker", "--run-once")
    assert worked.returncode == 0, worked.stdout[-3000:] + worked.stderr[-3000:]

    _, runs = asyncio.run(_read(prefect_api))
    finished = next(r for r in runs if r.id == flow_run.id)
    assert finished.state_name == "Completed", finished.state
    client = MlflowClient(prefect_api["MLFLOW_TRACKING_URI"], registry_uri=prefect_api["MLFLOW_TRACKING_URI"])
    [mlflow_run] = client.search_runs(
        [client.get_experiment_by_name("aeflow").experiment_id],
        f"tags.`prefect.flow_run_id` = '{flow_run.id}'",
    )
    assert mlflow_run.info.status == "FINISHED" and "test_psnr" in mlflow_run.data.metrics
