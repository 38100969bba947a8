"""`aeflow encode|reconstruct|denoise|upscale|generate` on real exports; `aeflow serve` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmarks.serve_http import png_declaring
from components.runtime import AutoencoderRuntime
from flows.cli import app
from flows.service.server import free_port
from tests.exports import DENOISE, SUPERRES, VAE_2D, export_tiny
from tests.flows.http_helpers import request

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {
        "denoise": export_tiny(root, "denoise", *DENOISE).folder,
        "superres": export_tiny(root, "superres", *SUPERRES).folder,
        "vae": export_tiny(root, "vae", *VAE_2D).folder,
    }


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / "digit.png")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "small.png")
    np.save(tmp_path / "batch.npy", rng.random((4, 1, 16, 16), dtype=np.float32))
    np.save(tmp_path / "bad.npy", np.full((2, 1, 16, 16), 3.0, dtype=np.float32))  # out of [0, 1]
    return {
        "png": tmp_path / "digit.png",
        "small": tmp_path / "small.png",
        "npy": tmp_path / "batch.npy",
        "bad": tmp_path / "bad.npy",
    }


def invoke(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_denoise_writes_a_png_per_image_and_a_npy_per_array(
    models: dict[str, Path], inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    output = invoke("denoise", "--model", models["denoise"], inputs["png"], inputs["npy"], "--out", out)
    lines = output.strip().splitlines()
    assert (
        len(lines) == 2
        and "digit.png: 1 image(s) 1×16×16" in lines[0]
        and "batch.npy: 4 image(s)" in lines[1]
    )
    runtime = AutoencoderRuntime(models["denoise"])
    png = np.asarray(Image.open(out / "digit.png"))
    np.testing.assert_allclose(png, (runtime.reconstruct([inputs["png"]])[0, 0] * 255).round(), atol=1)
    np.testing.assert_allclose(
        np.load(out / "batch.npy"), runtime.reconstruct(np.load(inputs["npy"])), atol=1e-6
    )


def test_upscale_doubles_the_size(models: dict[str, Path], inputs: dict[str, Path], tmp_path: Path) -> None:
    invoke("upscale", "--model", models["superres"], inputs["small"], "--out", tmp_path / "up")
    assert Image.open(tmp_path / "up" / "small.png").size == (16, 16)


def test_encode_then_generate_from_the_codes(
    models: dict[str, Path], inputs: dict[str, Path], tmp_path: Path
) -> None:
    output = invoke("encode", "-m", models["vae"], inputs["npy"], "-o", tmp_path)
    assert "codes 4×2" in output
    codes = np.load(tmp_path / "batch.codes.npy")
    runtime = AutoencoderRuntime(models["vae"])
    np.testing.assert_allclose(codes, runtime.encode(np.load(inputs["npy"])), atol=1e-6)
    output = invoke("generate", "-m", models["vae"], tmp_path / "batch.codes.npy", "-o", tmp_path / "dec")
    assert "4 code(s)" in output and len(list((tmp_path / "dec").glob("batch-*.png"))) == 4
    output = invoke("generate", "-m", models["vae"], "--n", "3", "--seed", "5", "-o", tmp_path / "gen")
    written = sorted((tmp_path / "gen").glob("sample-*.png"))
    assert len(written) == 3 and "3 sample(s)" in output
    expected = (runtime.sample(3, seed=5)[2, 0] * 255).round()
    np.testing.assert_allclose(np.asarray(Image.open(written[2])), expected, atol=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upscale", "--model", "{denoise}", "{png}"], "needs a 'superres' model"),
        (["generate", "--model", "{denoise}"], "no prior"),
        (["reconstruct", "--model", "{denoise}", "{small}"], None),  # resized: not an error
        (["encode", "--model", "{tmp}/missing", "{png}"], "manifest.json not found"),
        (["encode", "--model", "{denoise}", "{tmp}/absent.png"], "no such file"),
        (["generate", "--model", "{vae}", "{png}"], "codes must be a .npy"),
        (
            ["denoise", "--model", "{denoise}", "{npy}", "{bad}"],
            "bad.npy: images: float pixels must lie in [0, 1]",
        ),
        (["encode", "--model", "models:/nope", "{png}"], "models:/<name>@<alias>"),
    ],
)
def test_errors_are_one_clear_line(
    models: dict[str, Path], inputs: dict[str, Path], tmp_path: Path, args: list[str], message: str | None
) -> None:
    values = {
        **{k: str(v) for k, v in models.items()},
        **{k: str(v) for k, v in inputs.items()},
        "tmp": tmp_path,
    }
    result = runner.invoke(app, [a.format(**values) for a in args] + ["--out", str(tmp_path / "o")])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_serve_binds_loopback_by_default_and_answers(models: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "flows.cli", "serve", "--model", str(models["vae"]), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
        while True:
            try:
                if request(base, "GET", "/readyz").status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "aeflow serve did not come up"
            time.sleep(0.2)
        assert request(base, "GET", "/v1/metadata").json()["name"] == "vae"
        # Pillow's own bomb limit is --max-pixels in the server process: it refuses at Image.open,
        # before the header check, with its own wording.
        bomb = png_declaring(2_100, 2_000)  # 4.2 M pixels, over the default 4 M
        refused = request(base, "POST", "/v1/reconstruct", bomb, {"Content-Type": "image/png"})
        assert refused.status == 422 and "decompression bomb" in refused.json()["error"]
        listening = Path("/proc/net/tcp").read_text()  # local address 0100007F = 127.0.0.1
        assert f"0100007F:{port:04X}" in listening and f"00000000:{port:04X}" not in listening
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"on http://127.0.0.1:{port}/" in output


def test_the_cli_and_the_service_do_not_import_torch_mlflow_or_prefect() -> None:
    script = (
        "import sys, flows.cli, flows.service.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mlflow', 'prefect'}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
