"""ONNX export: self-contained checked graphs, dynamic batch, parity with torch, manifest.

Versions, `latest` and failed exports: test_export_versions.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from components.export import export_model
from components.models import build_model

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Exported

    from components.config import RunConfig

GRAPHS = ("encoder.onnx", "decoder.onnx", "model.onnx")


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_export_writes_exactly_the_graphs_and_manifest(exported: Exported) -> None:
    folder = exported.result.folder
    assert folder == Path(exported.cfg.export.dir) / exported.cfg.name / "v1"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*GRAPHS, "manifest.json"])
    assert not list(folder.rglob("*.onnx.data"))
    # No staging folders or temporary files are left next to the export.
    assert sorted(p.name for p in folder.parent.iterdir()) == [".lock", "latest", "v1"]
    assert [p.name for p in Path(exported.cfg.export.dir).iterdir()] == [exported.cfg.name]


@pytest.mark.parametrize("graph", GRAPHS)
def test_graphs_pass_the_onnx_checker(exported: Exported, graph: str) -> None:
    onnx.checker.check_model(str(exported.result.folder / graph), full_check=True)


def test_onnxruntime_matches_torch_at_several_batch_sizes(exported: Exported) -> None:
    folder, model = exported.result.folder, exported.model
    sessions = {name: _session(folder / name) for name in GRAPHS}
    generator = torch.Generator().manual_seed(42)
    for batch in (1, 3, 8):
        x = torch.rand((batch, *exported.image_shape), generator=generator)
        with torch.no_grad():
            code = model.encoder(x)
            expected = {"encoder.onnx": code, "decoder.onnx": model.decode(code), "model.onnx": model(x)}
        feeds = {
            "encoder.onnx": {"images": x.numpy()},
            "decoder.onnx": {"code": code.numpy()},
            "model.onnx": {"images": x.numpy()},
        }
        for name in GRAPHS:
            (actual,) = sessions[name].run(None, feeds[name])
            assert actual.shape == tuple(expected[name].shape), (name, batch)
            np.testing.assert_allclose(
                actual, expected[name].numpy(), atol=1e-5, rtol=0, err_msg=f"{name} @ {batch}"
            )


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_batch_dimension_is_symbolic(exported: Exported) -> None:
    manifest = exported.result.manifest
    expected_inputs = {
        "encoder.onnx": manifest["input"]["shape"],
        "decoder.onnx": manifest["latent"]["shape"],
        "model.onnx": manifest["input"]["shape"],
    }
    for name in GRAPHS:
        graph = onnx.load(str(exported.result.folder / name)).graph
        assert len(graph.input) == 1, name
        for value in (graph.input[0], graph.output[0]):
            dims = _dims(value)
            assert isinstance(dims[0], str) and dims[0], f"{name}: batch axis of {value.name} is {dims[0]!r}"
        assert _dims(graph.input[0])[1:] == expected_inputs[name]


def test_manifest_describes_the_export(exported: Exported) -> None:
    folder, manifest = exported.result.folder, exported.result.manifest
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    for name in GRAPHS:
        assert manifest["files"][name] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert manifest["input"]["shape"] == list(exported.image_shape)
    assert manifest["output"]["shape"] == list(exported.image_shape)
    with torch.no_grad():
        code = exported.model.encoder(torch.zeros((1, *exported.image_shape)))
    assert manifest["latent"]["shape"] == list(code.shape[1:])
    assert manifest["name"] == exported.cfg.name
    assert manifest["metrics"] == {"test_mse": 0.5}
    assert manifest["config"] == exported.cfg.model_dump(mode="json")
    for name in GRAPHS:
        assert 0.0 <= manifest["parity_max_abs_diff"][name] <= exported.cfg.export.parity_atol


def test_downsample_export_takes_small_images_and_returns_full_size(
    make_config: Callable[..., RunConfig],
) -> None:
    cfg = make_config(
        "name=tiny-sr",
        "data.image_size=16",
        "corruption.kind=downsample",
        "corruption.factor=2",
        "model.channels=[4]",
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 8, 8), (1, 16, 16))
    result = export_model(model, cfg, (1, 16, 16))

    assert result.manifest["input"]["shape"] == [1, 8, 8]
    assert result.manifest["output"]["shape"] == [1, 16, 16]
    graph = onnx.load(str(result.folder / "model.onnx")).graph
    assert _dims(graph.input[0])[1:] == [1, 8, 8]
    assert _dims(graph.output[0])[1:] == [1, 16, 16]
    x = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    (out,) = _session(result.folder / "model.onnx").run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5, rtol=0)


def test_exports_from_two_threads_at_once_both_succeed(tmp_path: Path) -> None:
    """A sweep exports its cells from worker threads; torch.export must not see two at once."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.exports import export_tiny

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(export_tiny, tmp_path, f"thread-{i}", seed=i) for i in range(2)]
        results = [future.result() for future in futures]
    for result in results:
        assert {"encoder.onnx", "decoder.onnx", "model.onnx"} <= {p.name for p in result.folder.iterdir()}


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_both_exporters_give_the_same_graphs(make_config: Callable[..., RunConfig], exporter: str) -> None:
    """The fast tracing exporter is the default; torch.export stays selectable and must agree."""
    cfg = make_config(
        "name=tiny-both", "data.image_size=16", "model.channels=[4, 4]", f"export.exporter={exporter}"
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16)).eval()
    result = export_model(model, cfg, (1, 16, 16))
    assert max(result.manifest["parity_max_abs_diff"].values()) < 1e-5
    x = torch.rand((5, 1, 16, 16), generator=torch.Generator().manual_seed(1))
    (out,) = _session(result.folder / "model.onnx").run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5)
    graph = onnx.load(str(result.folder / "decoder.onnx")).graph
    assert _dims(graph.output[0]) == ["batch", 1, 16, 16]
    # Each exact ×2 upsample + conv is exported as one transposed conv (onnxruntime's fastest form).
    ops = [node.op_type for node in graph.node]
    assert ops.count("ConvTranspose") == 2, ops
    assert not {"DepthToSpace", "Resize", "Upsample", "Einsum", "ScatterND"} & set(ops), ops  # kernels folded


def test_exporting_twice_in_one_process_writes_the_same_files(make_config: Callable[..., RunConfig]) -> None:
    """The transposed-conv map is made the first time an export traces it; no trace of that goes
    into the graph, so a fresh process and a warm one write byte-identical files."""
    from components.models import blocks

    cfg = make_config("name=tiny-twice", "data.image_size=16", "model.channels=[4, 4]")
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 16, 16), (1, 16, 16)).eval()
    blocks._transposed_map.cache_clear()  # as in a fresh process
    first = export_model(model, cfg, (1, 16, 16)).manifest["files"]
    second = export_model(model, cfg, (1, 16, 16)).manifest["files"]
    assert first == second
