"""ONNX export of the encoder, the decoder and the whole model, checked before anyone can load it.

Each graph is a single self-contained file (no `.onnx.data` beside it) with a dynamic batch
axis; `onnx.checker` must pass and onnxruntime must agree with torch within `parity_atol` at
several batch sizes. Each file is written under a temporary name and renamed once checked, in a
hidden staging folder that becomes the next version folder `exported/<name>/v<N>` in one rename;
`exported/<name>/latest` then points at it (see `components.export_layout`). A failed or killed
export leaves `latest` on the previous complete version.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript.optimizer
import torch

from components.config import RunConfig
from components.corruption import model_input_shape
from components.export_layout import MANIFEST_NAME, fsync_path, new_staging, publish
from components.model_folder import sha256_file as sha256_of
from components.models import Autoencoder, GraphSpec

FORMAT_VERSION = 1


class ExportError(RuntimeError):
    """An exported graph failed its checks; no version folder was written and `latest` is unchanged."""


@dataclass(frozen=True)
class ExportResult:
    folder: Path  # the version folder, exported/<name>/v<N>
    manifest: dict[str, Any]

    @property
    def latest(self) -> Path:
        """exported/<name>/latest, the stable path downstream apps load."""
        return self.folder.parent / "latest"


# torch.export traces with process-wide dispatch modes: two exports in one process at the same
# time (a sweep trains its cells in threads) corrupt each other ("ProxyTorchDispatchMode slot
# already occupied"). Exports are seconds long; they take turns.
_EXPORT_LOCK = threading.Lock()


def _export_graph(spec: GraphSpec, path: Path, opset: int, exporter: str) -> None:
    with _EXPORT_LOCK, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims = {name: torch.export.Dim(name, min=1) for axes in spec.dynamic for name in axes.values()}
            dynamic_shapes = tuple({axis: dims[name] for axis, name in axes.items()} for axes in spec.dynamic)
            torch.onnx.export(
                spec.module,
                spec.example,
                str(path),
                input_names=list(spec.input_names),
                output_names=list(spec.output_names),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        else:
            _torchscript_export(spec, path, opset)
    if path.with_name(path.name + ".data").exists():
        raise ExportError(f"{spec.filename} was written with external data; expected a single file")
    onnx.checker.check_model(str(path), full_check=True)


def _torchscript_export(spec: GraphSpec, path: Path, opset: int) -> None:
    """The tracing exporter: about 0.2 s a graph where torch.export takes 4 (BENCHMARKS.md).

    Tracing knows only the axes it is told are dynamic, and its shape inference leaves other
    output sizes symbolic: every output axis is set here, symbolic where the first input's is
    (batch; height and width of fully convolutional graphs), else the size torch produced.
    """
    first = spec.dynamic[0] if spec.dynamic else {}
    axes = dict(zip(spec.input_names, spec.dynamic, strict=True))
    for output in spec.output_names:  # same batch axis; spatial axes scale, so they get own names
        axes[output] = {a: name if a == 0 else f"{output}_{name}" for a, name in first.items()}
    torch.onnx.export(
        spec.module,
        spec.example,
        str(path),
        input_names=list(spec.input_names),
        output_names=list(spec.output_names),
        dynamic_axes=axes,
        opset_version=opset,
        dynamo=False,
        do_constant_folding=True,
    )
    with torch.no_grad():
        produced = spec.module(*spec.example)
    tensors = produced if isinstance(produced, tuple) else (produced,)
    graph = onnx.load(str(path))
    # Ops on weights alone (the transposed-conv kernels of upsample folds) become initializers,
    # as torch.export's exporter does: the file holds the graph that runs, whatever reads it.
    onnxscript.optimizer.fold_constants(graph)
    onnxscript.optimizer.remove_unused_nodes(graph)
    for value, tensor in zip(graph.graph.output, tensors, strict=True):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis in first:
                dim.dim_param = axes[value.name][axis]
            else:
                dim.dim_value = int(tensor.shape[axis])
    onnx.save(graph, str(path))


@torch.no_grad()
def _parity(spec: GraphSpec, path: Path, batches: list[int], atol: float) -> float:
    """Largest |torch − onnxruntime| over every output, at each batch size; raises past `atol`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch in batches:
        inputs = spec.sample(batch, generator)
        expected = spec.module(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        feeds = {name: x.numpy() for name, x in zip(spec.input_names, inputs, strict=True)}
        actual = session.run(None, feeds)
        for want, got in zip(expected, actual, strict=True):
            diff = float(np.max(np.abs(want.numpy() - got))) if got.shape == want.shape else float("inf")
            if diff > atol:
                raise ExportError(
                    f"{spec.filename}: onnxruntime differs from torch at batch {batch} (input shape "
                    f"{tuple(inputs[0].shape)}): max |diff| {diff:.2e} > {atol:.0e}, shapes {got.shape} vs "
                    f"{tuple(want.shape)}"
                )
            worst = max(worst, diff)
    return worst


def _io_spec(session: ort.InferenceSession) -> dict[str, list[dict[str, Any]]]:
    """Names, shapes (symbolic axes as strings) and dtypes of a graph's inputs and outputs."""

    def describe(args: list[Any]) -> list[dict[str, Any]]:
        return [{"name": a.name, "shape": list(a.shape), "dtype": a.type.removeprefix("tensor(").rstrip(")")}
                for a in args]  # fmt: skip

    return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}


def export_model(
    model: Autoencoder,
    cfg: RunConfig,
    image_shape: tuple[int, int, int],
    metrics: dict[str, float] | None = None,
    run_id: str | None = None,
) -> ExportResult:
    """Write `<export.dir>/<name>/v<N>/{encoder,decoder,model}.onnx` and `manifest.json`; move `latest`."""
    model = model.cpu().eval()
    input_shape = model_input_shape(cfg.corruption, image_shape)
    example = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    graphs = model.graphs(example)
    root = Path(cfg.export.dir) / cfg.name
    staging = new_staging(root)
    try:
        parity, described = {}, {}
        for spec in graphs:
            partial = staging / f".{spec.filename}.partial"
            _export_graph(spec, partial, cfg.export.opset, cfg.export.exporter)
            parity[spec.filename] = _parity(spec, partial, cfg.export.parity_batches, cfg.export.parity_atol)
            session = ort.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
            described[spec.filename.removesuffix(".onnx")] = {"file": spec.filename, **_io_spec(session)}
            _commit(partial, staging / spec.filename)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": cfg.name,
            "model_kind": cfg.model.kind,
            "architecture": cfg.model.architecture,
            "variational": model.variational,
            "generative": model.generative,
            "conditional": model.conditional,
            "num_classes": int(getattr(model, "num_classes", 0)),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "input": {"name": "images", "shape": list(input_shape), "dtype": "float32", "range": [0.0, 1.0]},
            "output": {"name": "images", "shape": list(image_shape), "dtype": "float32", "range": [0.0, 1.0]},
            "latent": {"name": "code", "shape": list(model.latent_shape)},
            "graphs": described,
            "dataset": cfg.data.name,
            "corruption": cfg.corruption.model_dump(mode="json"),
            "config": cfg.model_dump(mode="json"),
            "metrics": metrics or {},
            "mlflow_run_id": run_id,
            "parity_max_abs_diff": parity,
            "opset": cfg.export.opset,
            "torch_version": torch.__version__,
            "files": {spec.filename: sha256_of(staging / spec.filename) for spec in graphs},
            "file_sizes": {spec.filename: (staging / spec.filename).stat().st_size for spec in graphs},
        }
        partial = staging / f".{MANIFEST_NAME}.partial"
        partial.write_text(json.dumps(manifest, indent=2))
        _commit(partial, staging / MANIFEST_NAME)
        folder = publish(staging, root, keep=cfg.export.keep)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(folder=folder, manifest=manifest)


def _commit(partial: Path, final: Path) -> None:
    """A checked file gets its real name only once it is complete on disk."""
    fsync_path(partial)
    os.replace(partial, final)
