"""ONNX export of the encoder, the decoder and the whole model, checked before anyone can load it.

Each graph is a single self-contained file (no `.onnx.data` beside it) with a dynamic batch
axis; `onnx.checker` must pass and onnxruntime must agree with torch within `parity_atol` at
several batch sizes. Everything is written to a temporary folder first and moved into place
in one rename, so the runtime never sees a half-written export.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from components.config import RunConfig
from components.corruption import model_input_shape

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class ExportError(RuntimeError):
    """An exported graph failed its checks; nothing was written to the export folder."""


@dataclass(frozen=True)
class GraphSpec:
    """One graph to export: which module, its example input, and the ONNX input/output names."""

    filename: str
    module: nn.Module
    example: torch.Tensor
    input_name: str
    output_name: str


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: dict[str, Any]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _export_graph(spec: GraphSpec, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            spec.module,
            (spec.example,),
            str(path),
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if path.with_name(path.name + ".data").exists():
        raise ExportError(f"{path.name} was written with external data; expected a single file")
    onnx.checker.check_model(str(path), full_check=True)


@torch.no_grad()
def _parity(spec: GraphSpec, path: Path, batches: list[int], atol: float) -> float:
    """Largest |torch − onnxruntime| over random inputs at each batch size; raises past `atol`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch in batches:
        shape = (batch, *spec.example.shape[1:])
        # Draw inputs in the range the module sees: images in [0, 1], codes around the example's.
        low, high = float(spec.example.min()), float(spec.example.max())
        x = low + (high - low) * torch.rand(shape, generator=generator)
        expected = spec.module(x).numpy()
        actual = session.run(None, {spec.input_name: x.numpy()})[0]
        diff = float(np.max(np.abs(expected - actual)))
        if actual.shape != expected.shape or diff > atol:
            raise ExportError(
                f"{path.name}: onnxruntime differs from torch at batch {batch} "
                f"(max |diff| {diff:.2e} > {atol:.0e}, shapes {actual.shape} vs {expected.shape})"
            )
        worst = max(worst, diff)
    return worst


def export_model(
    model: nn.Module,
    cfg: RunConfig,
    image_shape: tuple[int, int, int],
    metrics: dict[str, float] | None = None,
    run_id: str | None = None,
) -> ExportResult:
    """Write `<export.dir>/<name>/{encoder,decoder,model}.onnx` and `manifest.json`."""
    model = model.cpu().eval()
    input_shape = model_input_shape(cfg.corruption, image_shape)
    example = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        code = model.encoder(example)  # type: ignore[operator]
    graphs = [
        GraphSpec("encoder.onnx", model.encoder, example, "images", "code"),  # type: ignore[arg-type]
        GraphSpec("decoder.onnx", model.decoder, code, "code", "images"),  # type: ignore[arg-type]
        GraphSpec("model.onnx", model, example, "images", "reconstruction"),
    ]
    root = Path(cfg.export.dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / cfg.name
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{cfg.name}.staging-"))
    try:
        parity = {}
        for spec in graphs:
            path = staging / spec.filename
            _export_graph(spec, path, cfg.export.opset)
            parity[spec.filename] = _parity(spec, path, cfg.export.parity_batches, cfg.export.parity_atol)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": cfg.name,
            "model_kind": cfg.model.kind,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "input": {"name": "images", "shape": list(input_shape), "dtype": "float32", "range": [0.0, 1.0]},
            "output": {"name": "images", "shape": list(image_shape), "dtype": "float32", "range": [0.0, 1.0]},
            "latent": {"name": "code", "shape": list(code.shape[1:])},
            "graphs": {
                "encoder": {"file": "encoder.onnx", "inputs": ["images"], "outputs": ["code"]},
                "decoder": {"file": "decoder.onnx", "inputs": ["code"], "outputs": ["images"]},
                "model": {"file": "model.onnx", "inputs": ["images"], "outputs": ["reconstruction"]},
            },
            "dataset": cfg.data.name,
            "corruption": cfg.corruption.model_dump(mode="json"),
            "config": cfg.model_dump(mode="json"),
            "metrics": metrics or {},
            "mlflow_run_id": run_id,
            "parity_max_abs_diff": parity,
            "opset": cfg.export.opset,
            "torch_version": torch.__version__,
            "files": {spec.filename: sha256_of(staging / spec.filename) for spec in graphs},
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        _swap_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(folder=final, manifest=manifest)


def _swap_into_place(staging: Path, final: Path) -> None:
    """Replace `final` by `staging` with renames only; the old export is removed last."""
    retired = None
    if final.exists():
        retired = final.with_name(f".{final.name}.retired-{datetime.now(UTC):%Y%m%d%H%M%S%f}")
        final.rename(retired)
    staging.rename(final)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
