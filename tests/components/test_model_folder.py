"""Damaged or mismatched export folders are refused with a message that says what is wrong.

Covers the loader's share of the bad-input list: a truncated .onnx file (with and without a
manifest rewritten to match it), a manifest copied over from another model, and codes of the
wrong size for the decoder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.export import sha256_of
from components.runtime import AutoencoderRuntime, InputError, ModelFolderError
from tests.exports import VAE_2D, export_tiny


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different models' version folders: a conv autoencoder (4×4×4 code) and a VAE (2-D code)."""
    root = tmp_path_factory.mktemp("folders")
    return {"ae": export_tiny(root, "ae").folder, "vae": export_tiny(root, "vae", *VAE_2D).folder}


@pytest.fixture
def ae_copy(sources: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(sources["ae"], tmp_path / "ae"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _rehash(folder: Path, manifest: dict) -> None:
    """Rewrite `manifest`'s sizes and hashes to fit the files now in `folder`, and save it there."""
    manifest["files"] = {name: sha256_of(folder / name) for name in manifest["files"]}
    manifest["file_sizes"] = {name: (folder / name).stat().st_size for name in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_truncated_graph_is_named_as_truncated(ae_copy: Path) -> None:
    decoder = ae_copy / "decoder.onnx"
    size = decoder.stat().st_size
    decoder.write_bytes(decoder.read_bytes()[: size // 3])
    with pytest.raises(
        ModelFolderError, match=rf"decoder\.onnx is truncated: {size // 3} bytes, its manifest says {size}"
    ):
        AutoencoderRuntime(ae_copy)


def test_truncated_graph_with_a_matching_manifest_is_an_onnxruntime_error(ae_copy: Path) -> None:
    decoder = ae_copy / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:1000])
    _rehash(ae_copy, _manifest(ae_copy))
    with pytest.raises(ModelFolderError, match=r"decoder\.onnx cannot be loaded by onnxruntime"):
        AutoencoderRuntime(ae_copy)


def test_manifest_copied_from_another_model_is_named(ae_copy: Path, sources: dict[str, Path]) -> None:
    shutil.copyfile(sources["vae"] / "manifest.json", ae_copy / "manifest.json")
    with pytest.raises(
        ModelFolderError, match=r"belongs to another export \(model 'vae' exported .*\): none of"
    ):
        AutoencoderRuntime(ae_copy)


def test_manifest_from_another_model_with_rewritten_hashes_is_caught_by_the_graphs(
    ae_copy: Path, sources: dict[str, Path]
) -> None:
    """Hashes alone cannot tell: the graphs' real inputs and outputs disagree with what the manifest says."""
    _rehash(ae_copy, _manifest(sources["vae"]))
    with pytest.raises(ModelFolderError, match=r"encoder\.onnx takes .* the manifest is from another model"):
        AutoencoderRuntime(ae_copy)


def test_one_graph_from_another_export_is_named(ae_copy: Path, sources: dict[str, Path]) -> None:
    shutil.copyfile(sources["vae"] / "model.onnx", ae_copy / "model.onnx")
    with pytest.raises(ModelFolderError, match=r"model\.onnx does not match the sha256 in its manifest"):
        AutoencoderRuntime(ae_copy)


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (np.zeros((2, 3), dtype=np.float32), r"codes: expected shape \(N, 2\), got \(2, 3\)"),
        (np.zeros((2, 2, 1), dtype=np.float32), r"codes: expected shape \(N, 2\), got \(2, 2, 1\)"),
        (np.zeros((5,), dtype=np.float32), r"codes: expected shape \(N, 2\), got \(5,\)"),
        (np.zeros((0, 2), dtype=np.float32), r"codes: the batch is empty"),
        (np.array([[0.0, np.inf]], dtype=np.float32), r"codes: contains NaN or infinite values"),
    ],
)
def test_codes_of_the_wrong_size_for_a_flat_code(
    sources: dict[str, Path], codes: np.ndarray, expected: str
) -> None:
    vae = AutoencoderRuntime(sources["vae"])
    with pytest.raises(InputError, match=expected):
        vae.decode(codes)
    assert vae.decode(np.zeros(2, dtype=np.float32)).shape == (
        1,
        1,
        16,
        16,
    )  # one code without its batch axis
