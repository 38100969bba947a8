"""Batch inference: run the champion graphs over a folder of files and write codes, images and a report.

Reruns are cheap and safe: an index in the output folder remembers which input (by content hash)
was processed by which model (by its graphs' hashes), so unchanged files are skipped and a new
champion reprocesses everything. A file that cannot be read is listed in the report, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.model_folder import sha256_file
from components.runtime import AutoencoderRuntime, InputError
from components.runtime_io import to_pil

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".npy")
INDEX = "index.json"


class BatchInferenceRequest(BaseModel):
    """What to run, on what, and where the outputs go."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        "models:/lesson-denoise@champion", description="models:/<name>@<alias> or an exported/<name> folder."
    )
    input_dir: Path | None = Field(None, description="Every png/jpg/bmp/npy below it, recursively.")
    files: list[Path] = Field(default_factory=list, description="Or (also) these files.")
    output_dir: Path = Path("batch-outputs")
    write_codes: bool = True
    write_images: bool = True

    @model_validator(mode="after")
    def _has_inputs(self) -> BatchInferenceRequest:
        if self.input_dir is None and not self.files:
            raise ValueError("give input_dir (a folder of images) or files (a list of paths)")
        return self


def model_identity(runtime: AutoencoderRuntime) -> str:
    """Changes whenever any graph changes: the hashes the manifest records for the files."""
    files = json.dumps(runtime.manifest.get("files", {}), sort_keys=True)
    return hashlib.sha256(files.encode()).hexdigest()[:16]


@task(name="list-inputs", cache_policy=NO_CACHE)
def list_inputs(request: BatchInferenceRequest) -> list[tuple[str, str]]:
    """(path, name relative to the input folder) of every input, in a stable order."""
    found: list[tuple[str, str]] = []
    if request.input_dir is not None:
        root = request.input_dir
        if not root.is_dir():
            raise FileNotFoundError(f"input_dir {root} is not a folder")
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                found.append((str(path), str(path.relative_to(root))))
    found += [(str(path), path.name) for path in request.files]
    return found


def _write_atomically(target: Path, write: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial{target.suffix}")
    write(partial)
    os.replace(partial, target)


def _process(runtime: AutoencoderRuntime, source: Path, stem: Path, request: BatchInferenceRequest) -> str:
    if source.suffix.lower() == ".npy":
        try:
            batch = runtime.images(np.load(source, allow_pickle=False))
        except (ValueError, OSError) as err:
            raise InputError(f"not a readable image array: {err}") from None
    else:
        batch = runtime.images([source])
    wrote = []
    if request.write_codes:
        codes = runtime.encode(batch)
        target = request.output_dir / f"{stem}.codes.npy"
        _write_atomically(target, lambda p: np.save(p, codes))
        wrote.append(target.name)
    if request.write_images:
        outputs = runtime.reconstruct(batch)
        for i, image in enumerate(outputs):
            name = f"{stem}.png" if len(outputs) == 1 else f"{stem}-{i:03d}.png"
            target = request.output_dir / name
            _write_atomically(target, lambda p, im=image: to_pil(im).save(p, format="PNG"))
            wrote.append(target.name)
    return ", ".join(wrote)


@task(name="infer", cache_policy=NO_CACHE)
def infer_files(request: BatchInferenceRequest, inputs: list[tuple[str, str]]) -> dict[str, Any]:
    logger = get_run_logger()
    runtime = AutoencoderRuntime.load(request.model)
    identity = model_identity(runtime)
    index_path = request.output_dir / INDEX
    index: dict[str, dict[str, str]] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    processed, skipped, failed = [], [], []
    for source_text, relative in inputs:
        source = Path(source_text)
        try:
            digest = sha256_file(source)
        except OSError as err:
            failed.append({"file": relative, "error": f"cannot read: {err}"})
            continue
        seen = index.get(relative)
        if seen and seen["input_sha256"] == digest and seen["model"] == identity:
            skipped.append(relative)
            continue
        try:
            wrote = _process(runtime, source, Path(relative).with_suffix(""), request)
        except (InputError, OSError, ValueError) as err:
            failed.append({"file": relative, "error": str(err)})
            logger.warning("%s: %s", relative, err)
            continue
        index[relative] = {"input_sha256": digest, "model": identity, "outputs": wrote}
        processed.append(relative)
        _write_atomically(index_path, lambda p: p.write_text(json.dumps(index, indent=1)))
    return {
        "model": request.model,
        "model_identity": identity,
        "model_kind": runtime.kind,
        "run_id": runtime.manifest.get("mlflow_run_id"),
        "processed": processed,
        "skipped": skipped,
        "failed": failed,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Batch inference with `{report['model']}`",
        "",
        f"Model kind {report['model_kind']}, graphs {report['model_identity']}, MLflow run "
        f"`{report['run_id']}`.",
        "",
        f"- processed: {len(report['processed'])}",
        f"- skipped (already done by this model): {len(report['skipped'])}",
        f"- failed: {len(report['failed'])}",
    ]
    if report["failed"]:
        lines += ["", "| file | error |", "|---|---|"]
        lines += [f"| {item['file']} | {item['error']} |" for item in report["failed"]]
    return "\n".join(lines)


@flow(name="batch-inference", log_prints=True)
def batch_inference(request: BatchInferenceRequest) -> dict[str, Any]:
    """Encode and reconstruct every input with the given model; write report.json and report.md."""
    inputs = list_inputs(request)
    report = infer_files(request, inputs)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    (request.output_dir / "report.json").write_text(json.dumps(report, indent=1))
    markdown = report_markdown(report)
    (request.output_dir / "report.md").write_text(markdown + "\n")
    create_markdown_artifact(key="batch-inference-report", markdown=markdown)
    print(
        f"batch inference: {len(report['processed'])} processed, {len(report['skipped'])} skipped, "
        f"{len(report['failed'])} failed; outputs in {request.output_dir}"
    )
    return report
