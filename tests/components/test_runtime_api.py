"""AutoencoderRuntime beyond shapes: torch-free import, image inputs, value checks, sampling, providers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from components.export import sha256_of
from components.runtime import AutoencoderRuntime, InputError, ModelFolderError, OnnxAutoencoder
from components.runtime_io import png_bytes
from tests.exports import SUPERRES, VAE_2D, export_tiny

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ae(tmp_path_factory: pytest.TempPathFactory) -> AutoencoderRuntime:
    return AutoencoderRuntime(export_tiny(tmp_path_factory.mktemp("ae"), "ae").folder, intra_op_threads=1)


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> AutoencoderRuntime:
    return AutoencoderRuntime(export_tiny(tmp_path_factory.mktemp("vae"), "vae", *VAE_2D).folder)


def test_runtime_works_with_torch_mlflow_and_prefect_unimportable(
    ae: AutoencoderRuntime, tmp_path: Path
) -> None:
    picture = tmp_path / "digit.png"
    Image.fromarray((np.arange(256).reshape(16, 16)).astype(np.uint8)).save(picture)
    expected = ae.reconstruct([picture])
    script = f"""
import sys
BLOCKED = {{"torch", "mlflow", "prefect", "torchvision"}}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from components.runtime import AutoencoderRuntime
rt = AutoencoderRuntime.load({str(ae.folder)!r})
out = rt.reconstruct([{str(picture)!r}])
codes = rt.encode(np.zeros((2, 16, 16), dtype=np.uint8))
assert rt.decode(codes).shape == (2, 1, 16, 16)
np.save({str(tmp_path / "out.npy")!r}, out)
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)


def test_old_name_still_works(ae: AutoencoderRuntime) -> None:
    assert OnnxAutoencoder is AutoencoderRuntime


def test_pil_images_paths_and_arrays_agree(ae: AutoencoderRuntime, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).convert("RGB").save(path)  # an RGB file is converted to the model's one channel
    from_array = ae.reconstruct(pixels[None])
    np.testing.assert_allclose(ae.reconstruct([path]), from_array, atol=1e-6)
    np.testing.assert_allclose(ae.reconstruct(Image.fromarray(pixels)), from_array, atol=1e-6)
    np.testing.assert_allclose(
        ae.reconstruct(pixels[None, :, :, None]), from_array, atol=1e-6
    )  # (N, H, W, C)
    # A drawing of another size is resized to the model's 16×16.
    big = tmp_path / "big.png"
    Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(big)
    assert ae.reconstruct([big]).shape == (1, 1, 16, 16)


def test_png_round_trip_is_exact(ae: AutoencoderRuntime) -> None:
    images = ae.reconstruct(np.random.default_rng(1).random((3, 16, 16), dtype=np.float32))
    strip = np.asarray(Image.open(__import__("io").BytesIO(png_bytes(images))))
    assert strip.shape == (16, 48)
    np.testing.assert_array_equal(strip[:, 16:32], (images[1, 0] * 255).round().astype(np.uint8))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((2, 16, 16), 1.5, dtype=np.float32), r"\[0, 1\].*1\.5"),
        (np.full((2, 16, 16), -0.1, dtype=np.float32), r"\[0, 1\]"),
        (np.full((2, 16, 16), 300, dtype=np.int64), r"0\.\.255"),
        (np.zeros((2, 3, 16, 16), dtype=np.float32), r"1 channel\(s\), got 3"),
        (np.zeros((0, 1, 16, 16), dtype=np.float32), "empty"),
        (np.array([["a"]]), "dtype"),
        ([[0.0, 1.0], [0.5]], "rectangular"),
    ],
)
def test_bad_images_say_what_was_expected(ae: AutoencoderRuntime, bad: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ae.encode(bad)


def test_code_of_the_wrong_size(ae: AutoencoderRuntime) -> None:
    with pytest.raises(InputError, match=r"expected shape \(N, 4, 4, 4\)"):
        ae.decode(np.zeros((2, 4, 4, 5), dtype=np.float32))
    with pytest.raises(InputError, match="NaN"):
        ae.decode(np.full((1, 4, 4, 4), np.nan, dtype=np.float32))


def test_unreadable_image_files(ae: AutoencoderRuntime, tmp_path: Path) -> None:
    (tmp_path / "not.png").write_bytes(b"hello")
    with pytest.raises(InputError, match="not an image"):
        ae.reconstruct([tmp_path / "not.png"])
    with pytest.raises(InputError, match="no such file"):
        ae.reconstruct([tmp_path / "absent.png"])


def test_sample_and_interpolate_on_a_generative_model(vae: AutoencoderRuntime) -> None:
    assert vae.generative and vae.latent_shape == (2,)
    samples = vae.sample(5, seed=3)
    assert samples.shape == (5, 1, 16, 16)
    np.testing.assert_array_equal(samples, vae.sample(5, seed=3))
    assert not np.array_equal(samples, vae.sample(5, seed=4))
    codes = np.random.default_rng(3).standard_normal((5, 2), dtype=np.float32)
    np.testing.assert_allclose(samples, vae.decode(codes), atol=1e-6)

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 16, 16), dtype=np.float32), rng.random((2, 16, 16), dtype=np.float32)
    path = vae.interpolate(a, b, steps=4)
    assert path.shape == (2, 4, 1, 16, 16)
    np.testing.assert_allclose(path[:, 0], vae.reconstruct(a), atol=1e-5)
    np.testing.assert_allclose(path[:, -1], vae.reconstruct(b), atol=1e-5)
    middle = vae.decode((vae.encode(a) + vae.encode(b)) / 2)
    np.testing.assert_allclose(vae.interpolate(a, b, steps=3)[:, 1], middle, atol=1e-5)


def test_sampling_needs_a_generative_model(ae: AutoencoderRuntime) -> None:
    with pytest.raises(InputError, match="no prior"):
        ae.sample(2)


def test_superres_input_is_the_low_resolution_image(tmp_path: Path) -> None:
    rt = AutoencoderRuntime(export_tiny(tmp_path, "sr", *SUPERRES).folder)
    assert rt.kind == "superres" and rt.input_shape == (1, 8, 8) and rt.output_shape == (1, 16, 16)
    assert rt.reconstruct(np.zeros((3, 8, 8), dtype=np.uint8)).shape == (3, 1, 16, 16)


def test_cuda_request_that_falls_back_to_cpu_says_so(ae: AutoencoderRuntime) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here, so there is no fallback to report")
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider was asked for"):
        rt = AutoencoderRuntime(ae.folder, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert rt.providers == ["CPUExecutionProvider"]
    assert rt.provider_note is not None and "CPUExecutionProvider" in rt.provider_note
    assert AutoencoderRuntime(ae.folder).provider_note is None


def test_a_graph_onnxruntime_cannot_load_is_a_folder_error(ae: AutoencoderRuntime, tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(ae.folder, tmp_path / "m"))
    broken = onnx.load(str(folder / "decoder.onnx"))
    broken.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(broken, str(folder / "decoder.onnx"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["decoder.onnx"] = sha256_of(
        folder / "decoder.onnx"
    )  # hashes match: only the graph is bad
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match=r"decoder\.onnx cannot be loaded"):
        AutoencoderRuntime(folder)


def test_registry_uri_is_parsed_before_mlflow_is_asked() -> None:
    with pytest.raises(ValueError, match=r"models:/<name>@<alias>"):
        AutoencoderRuntime.load("models:/no-alias-or-version")
    assert torch.__version__  # this test module itself may use torch; the subprocess test above does not
