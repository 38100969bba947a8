"""The onnxruntime-only runtime: shapes, parity between graphs, input checks, refusing damaged folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from components.runtime import InputError, ModelFolderError, OnnxAutoencoder

if TYPE_CHECKING:
    from conftest import Exported


@pytest.fixture(scope="module")
def runtime(exported: Exported) -> OnnxAutoencoder:
    return OnnxAutoencoder(exported.result.folder, intra_op_threads=1)


@pytest.fixture
def images(exported: Exported) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((5, *exported.image_shape), dtype=np.float32)


@pytest.fixture
def folder_copy(exported: Exported, tmp_path: Path) -> Path:
    """A private copy of the export, safe to damage."""
    return Path(shutil.copytree(exported.result.folder, tmp_path / "model"))


def test_shapes(runtime: OnnxAutoencoder, exported: Exported, images: np.ndarray) -> None:
    with torch.no_grad():
        latent = tuple(exported.model.encoder(torch.from_numpy(images)).shape[1:])
    assert runtime.input_shape == exported.image_shape
    assert runtime.latent_shape == latent

    codes = runtime.encode(images)
    assert codes.shape == (5, *latent)
    decoded = runtime.decode(codes)
    assert decoded.shape == images.shape
    out = runtime.reconstruct(images)
    assert out.shape == images.shape
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_reconstruct_equals_decode_of_encode_and_torch(
    runtime: OnnxAutoencoder, exported: Exported, images: np.ndarray
) -> None:
    out = runtime.reconstruct(images)
    np.testing.assert_allclose(out, runtime.decode(runtime.encode(images)), atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = exported.model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_uint8_images_are_scaled_to_unit_range(runtime: OnnxAutoencoder, images: np.ndarray) -> None:
    as_bytes = (images * 255).round().astype(np.uint8)
    np.testing.assert_allclose(
        runtime.reconstruct(as_bytes),
        runtime.reconstruct(as_bytes.astype(np.float32) / 255),
        atol=1e-6,
        rtol=0,
    )
    assert runtime.encode(as_bytes).shape[0] == len(images)


def test_grayscale_batches_may_omit_the_channel_axis(runtime: OnnxAutoencoder, images: np.ndarray) -> None:
    assert runtime.input_shape[0] == 1
    full = runtime.reconstruct(images)
    without_channel = runtime.reconstruct(images[:, 0])  # (N, H, W)
    assert without_channel.shape == full.shape
    np.testing.assert_allclose(without_channel, full, atol=1e-6, rtol=0)
    # A single image without its batch axis is a batch of one.
    single = runtime.reconstruct(images[0])
    assert single.shape == (1, *images.shape[1:])
    np.testing.assert_allclose(single[0], full[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(5, 1, 15, 16), (5, 3, 16, 16), (5, 1, 16), (2, 2, 1, 16, 16)])
def test_wrong_shape_is_an_input_error(runtime: OnnxAutoencoder, shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="shape"):
        runtime.reconstruct(np.zeros(shape, dtype=np.float32))


def test_wrong_code_shape_is_an_input_error(runtime: OnnxAutoencoder) -> None:
    with pytest.raises(InputError):
        runtime.decode(np.zeros((2, 99, 1, 1), dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_an_input_error(runtime: OnnxAutoencoder, images: np.ndarray, bad: float) -> None:
    images[2, 0, 3, 3] = bad
    for method in (runtime.encode, runtime.reconstruct):
        with pytest.raises(InputError, match="NaN"):
            method(images)


def test_missing_folder_or_manifest(folder_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match=r"manifest\.json"):
        OnnxAutoencoder(tmp_path / "nothing-here")
    (folder_copy / "manifest.json").unlink()
    with pytest.raises(ModelFolderError, match=r"manifest\.json"):
        OnnxAutoencoder(folder_copy)


def test_unreadable_manifest(folder_copy: Path) -> None:
    (folder_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="JSON"):
        OnnxAutoencoder(folder_copy)


def test_truncated_graph_is_refused(folder_copy: Path) -> None:
    encoder = folder_copy / "encoder.onnx"
    data = encoder.read_bytes()
    encoder.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFolderError, match=r"encoder\.onnx"):
        OnnxAutoencoder(folder_copy)


def test_missing_graph_is_refused(folder_copy: Path) -> None:
    (folder_copy / "decoder.onnx").unlink()
    with pytest.raises(ModelFolderError, match=r"decoder\.onnx"):
        OnnxAutoencoder(folder_copy)


def test_edited_manifest_hash_is_refused(folder_copy: Path) -> None:
    manifest_path = folder_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    digest = manifest["files"]["model.onnx"]
    manifest["files"]["model.onnx"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match=r"model\.onnx"):
        OnnxAutoencoder(folder_copy)


def test_intact_copy_loads(folder_copy: Path, runtime: OnnxAutoencoder, images: np.ndarray) -> None:
    # The damage tests above fail because of the damage, not because the copy itself is unusable.
    copy = OnnxAutoencoder(folder_copy, intra_op_threads=1)
    np.testing.assert_array_equal(copy.reconstruct(images), runtime.reconstruct(images))
