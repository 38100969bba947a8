"""The training pipeline as one Prefect flow: ingest → corrupt → train → evaluate → export → register.

Tasks pass file paths and the MLflow run id between them, never tensors or modules, so each
step can be retried or inspected on its own. All the work happens in `components`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from components.checkpoints import ResumeNote
from components.comparisons import kind_comparisons
from components.config import RunConfig
from components.corruption import corrupt_fixed
from components.data import DatasetError, ImageSplits, ingest
from components.evaluation import evaluate
from components.export import export_model
from components.figures import loss_curves
from components.pictures import kind_pictures
from components.training import EpochReport, TrainingDivergedError, TrainResult, fit, load_trained
from flows.champion import decide_champion
from flows.ddp_launch import DistributedRun, train_distributed
from flows.epoch_hooks import run_epoch_hooks
from flows.settings import MlflowSettings, load_mlflow_settings
from flows.summary import summary_markdown
from flows.tracking import EpochLog, Tracker


@dataclass(frozen=True)
class PipelineResult:
    run_id: str
    export_dir: str
    metrics: dict[str, float]
    registered_versions: dict[str, str]
    champion: dict[str, Any]
    tracking_uri: str
    ui_command: str
    train_seconds: float


def _work_dir(cfg: RunConfig, run_id: str) -> Path:
    path = Path(cfg.data.cache_dir) / "runs" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_step(cfg: RunConfig) -> str:
    logger = get_run_logger()
    result = ingest(cfg.data)
    s = result.splits
    source = "cache" if result.from_cache else cfg.data.name
    logger.info(
        "ingested %s from %s: train %d, val %d, test %d images of shape %s",
        cfg.data.name,
        source,
        len(s.train),
        len(s.val),
        len(s.test),
        s.image_shape,
    )
    return str(result.path)


@task(name="corrupt", cache_policy=NO_CACHE)
def corrupt_step(cfg: RunConfig, data_path: str, run_id: str) -> str:
    """Fix the evaluation corruption once (seeded) so every run is scored on the same inputs."""
    splits = ImageSplits.load(Path(data_path))
    corrupted = corrupt_fixed(splits.test, cfg.corruption)
    path = _work_dir(cfg, run_id) / "eval-inputs.pt"
    torch.save(corrupted, path)
    get_run_logger().info("corruption %s: evaluation inputs %s", cfg.corruption.kind, tuple(corrupted.shape))
    return str(path)


def _retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures (a lost connection, a killed worker thread, a failing hook), not the
    ones a retry would only repeat: a diverged loss, missing data, a config the model cannot use."""
    error = state.data if isinstance(state.data, BaseException) else None
    return not isinstance(error, TrainingDivergedError | DatasetError | ValueError)


@task(name="train", cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_permanent)
def train_step(cfg: RunConfig, data_path: str, settings: MlflowSettings, run_id: str) -> tuple[str, float]:
    """Train, resuming the checkpoint of a killed run or of this task's failed attempt.

    Every epoch is logged once per MLflow run at step = epoch: epochs a checkpoint restored are
    logged only when this run has not seen them (a rerun after a kill starts a new MLflow run;
    a Prefect retry continues the same one).
    """
    logger = get_run_logger()
    tracker = Tracker(settings)
    splits = ImageSplits.load(Path(data_path))
    logged = tracker.logged_steps(run_id, "train_loss")

    def on_resume(note: ResumeNote) -> None:
        logger.info("%s", note.message)
        if note.resumed:
            tracker.client.set_tag(run_id, "aeflow.resumed_from_epoch", str(note.epoch))

    epochs = EpochLog(tracker, run_id)

    def on_epoch(report: EpochReport) -> None:
        if epochs.add(report):  # progress lines as often as metrics are sent, not every epoch
            logger.info(
                "epoch %d/%d: train loss %.5f, val loss %.5f, %.0f images/s",
                report.epoch,
                report.epochs,
                report.train_loss,
                report.val_loss,
                report.images_per_second,
            )
        run_epoch_hooks(report)

    result: TrainResult | DistributedRun
    if cfg.train.strategy == "ddp":  # torchrun workers train; rank 0 logs the epochs itself
        work_dir = _work_dir(cfg, run_id)
        result = train_distributed(cfg, Path(data_path), work_dir, settings, run_id, logger.info)
    else:
        try:
            result = fit(cfg, splits, on_epoch=on_epoch, on_resume=on_resume)
        finally:
            epochs.flush()  # a failed run keeps the curve up to its last finished epoch
        restored = [r for r in result.history[: result.resumed_from] if r.epoch not in logged]
        if restored:
            tracker.log_epochs(run_id, restored)
    curves = loss_curves(result.history, _work_dir(cfg, run_id) / "loss_curves.png")
    tracker.log_artifact(run_id, curves, "figures")
    tracker.log_metrics(run_id, {"train_seconds": result.seconds})
    logger.info("trained on %s in %.1f s; checkpoint %s", result.device, result.seconds, result.checkpoint)
    return str(result.checkpoint), result.seconds


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_step(
    cfg: RunConfig, data_path: str, eval_inputs: str, checkpoint: str, settings: MlflowSettings, run_id: str
) -> dict[str, float]:
    logger = get_run_logger()
    splits = ImageSplits.load(Path(data_path))
    model = load_trained(cfg, splits.image_shape, Path(checkpoint))
    corrupted = torch.load(eval_inputs, weights_only=True)
    result = evaluate(model, splits, cfg, corrupted)
    metrics = result.metrics | kind_comparisons(model, splits, cfg, corrupted, result.metrics)
    pictures = kind_pictures(model, splits, cfg, result, _work_dir(cfg, run_id))
    tracker = Tracker(settings)
    tracker.log_metrics(run_id, metrics)
    for picture in pictures:
        tracker.log_artifact(run_id, picture, "figures")
    shown = {k: round(v, 4) for k, v in metrics.items() if not k.startswith("vae_kl_dim_")}
    logger.info("test metrics: %s", shown)
    logger.info("pictures: %s", ", ".join(p.name for p in pictures))
    return metrics


@task(name="export", cache_policy=NO_CACHE)
def export_step(
    cfg: RunConfig, data_path: str, checkpoint: str, metrics: dict[str, float], run_id: str
) -> str:
    splits = ImageSplits.load(Path(data_path))
    model = load_trained(cfg, splits.image_shape, Path(checkpoint))
    result = export_model(model, cfg, splits.image_shape, metrics=metrics, run_id=run_id)
    worst = max(result.manifest["parity_max_abs_diff"].values())
    get_run_logger().info("exported ONNX graphs to %s (max |torch - onnxruntime| %.1e)", result.folder, worst)
    return str(result.folder)


@task(name="register", cache_policy=NO_CACHE)
def register_step(cfg: RunConfig, export_dir: str, settings: MlflowSettings, run_id: str) -> dict[str, str]:
    import json

    folder = Path(export_dir)
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    tracker = Tracker(settings)
    tracker.log_artifact(run_id, folder / "manifest.json", "export")
    versions = tracker.log_onnx_models(run_id, folder, manifest, cfg.name)
    get_run_logger().info("registered in MLflow: %s", versions)
    return versions


@task(name="champion", cache_policy=NO_CACHE)
def champion_step(
    cfg: RunConfig,
    data_path: str,
    eval_inputs: str,
    metrics: dict[str, float],
    versions: dict[str, str],
    settings: MlflowSettings,
    run_id: str,
) -> dict[str, Any]:
    """Move the champion alias to this run's versions only if it beats the champion on the same images."""
    splits = ImageSplits.load(Path(data_path))
    corrupted = torch.load(eval_inputs, weights_only=True)
    labels = splits.test_labels if cfg.model.kind == "cvae" else None
    names = settings.registered_models.for_run(cfg.name)
    decision = decide_champion(settings, names, versions, metrics, corrupted, splits.test, labels)
    tracker = Tracker(settings)
    tracker.client.set_tag(run_id, "aeflow.champion.decision", "promoted" if decision.promoted else "kept")
    tracker.client.set_tag(run_id, "aeflow.champion.reason", decision.reason)
    scores = {f"champion_challenger_{decision.metric}": decision.challenger_score}
    if decision.incumbent_score is not None:
        scores[f"champion_incumbent_{decision.metric}"] = decision.incumbent_score
    tracker.log_metrics(run_id, scores)
    get_run_logger().info("%s: %s", "promoted" if decision.promoted else "champion kept", decision.reason)
    return decision.as_dict()


@flow(name="train-autoencoder", log_prints=True)
def train_autoencoder(
    config: RunConfig, mlflow_settings: MlflowSettings | None = None, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Train, evaluate, export and register one autoencoder; returns where everything went.

    `parent_run_id` nests this run's MLflow run under a sweep's parent run.
    """
    settings = mlflow_settings or load_mlflow_settings()
    tracker = Tracker(settings)
    tracker.check_reachable()
    tags = {"aeflow.preset": config.name, "prefect.flow_run_id": str(flow_run.get_id() or "")}
    run_id = tracker.start_run(config, tags=tags, parent_run_id=parent_run_id)
    try:
        data_path = ingest_step(config)
        eval_inputs = corrupt_step(config, data_path, run_id)
        train = train_step.with_options(retries=config.train.retries)
        checkpoint, train_seconds = train(config, data_path, settings, run_id)
        metrics = evaluate_step(config, data_path, eval_inputs, checkpoint, settings, run_id)
        export_dir = export_step(config, data_path, checkpoint, metrics, run_id)
        versions = register_step(config, export_dir, settings, run_id)
        champion = champion_step(config, data_path, eval_inputs, metrics, versions, settings, run_id)
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id, "FINISHED")
    result = PipelineResult(
        run_id=run_id,
        export_dir=export_dir,
        metrics=metrics,
        registered_versions=versions,
        champion=champion,
        tracking_uri=settings.tracking_uri,
        ui_command=tracker.ui_command(),
        train_seconds=train_seconds,
    )
    create_markdown_artifact(
        key=re.sub(r"[^a-z0-9-]+", "-", f"{config.name}-summary".lower()),
        markdown=summary_markdown(config, asdict(result)),
        description=f"aeflow run {run_id}",
    )
    return asdict(result)
