"""The HTTP service on a real loopback socket (uvicorn in a thread), against the runtime's own answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.serve_http import png_declaring
from components.runtime import AutoencoderRuntime
from flows.service.app import create_app
from flows.service.limits import ServiceLimits
from flows.service.server import running_server
from tests.exports import DENOISE, VAE_2D, export_tiny
from tests.flows.http_helpers import png_of, post_json, request

LIMITS = ServiceLimits(max_body_bytes=256 * 1024, max_batch=16, max_pixels=200 * 200)


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> AutoencoderRuntime:
    return AutoencoderRuntime(export_tiny(tmp_path_factory.mktemp("vae"), "vae-2d", *VAE_2D).folder)


@pytest.fixture(scope="module")
def base(vae: AutoencoderRuntime) -> Iterator[str]:
    with running_server(create_app(vae, LIMITS)) as url:
        yield url


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)


def test_health_readiness_metadata_and_docs(base: str, vae: AutoencoderRuntime) -> None:
    assert request(base, "GET", "/healthz").json() == {"status": "ok"}
    ready = request(base, "GET", "/readyz")
    assert ready.status == 200 and ready.json()["ready"] is True
    meta = request(base, "GET", "/v1/metadata").json()
    assert {k: v for k, v in meta.items() if k != "service"} == vae.manifest
    assert meta["service"]["limits"]["max_batch"] == 16 and meta["service"]["latent_plane"] is True
    paths = request(base, "GET", "/openapi.json").json()["paths"]
    assert {"/v1/encode", "/v1/decode", "/v1/reconstruct", "/v1/generate", "/healthz"} <= set(paths)
    assert request(base, "GET", "/docs").status == 200
    page = request(base, "GET", "/")
    assert page.status == 200 and b"Latent explorer" in page.body


def test_encode_decode_reconstruct_match_the_runtime(
    base: str, vae: AutoencoderRuntime, images: np.ndarray
) -> None:
    encoded = post_json(base, "/v1/encode", {"images": images.tolist()}).json()
    np.testing.assert_allclose(encoded["codes"], vae.encode(images), atol=1e-5)
    decoded = post_json(base, "/v1/decode", {"codes": encoded["codes"]}).json()
    assert decoded["shape"] == [3, 1, 16, 16]
    np.testing.assert_allclose(decoded["images"], vae.decode(np.array(encoded["codes"])), atol=1e-5)
    out = post_json(base, "/v1/reconstruct", {"images": (images / 255).tolist()}).json()
    np.testing.assert_allclose(out["images"], vae.reconstruct(images), atol=1e-5)


def test_png_in_and_png_out(base: str, vae: AutoencoderRuntime, images: np.ndarray) -> None:
    headers = {"Content-Type": "image/png", "Accept": "image/png"}
    reply = request(base, "POST", "/v1/reconstruct", png_of(images[0]), headers)
    assert reply.headers["x-image-count"] == "1"
    expected = (vae.reconstruct(images[:1])[0, 0] * 255).round()
    np.testing.assert_allclose(reply.image(), expected, atol=1)
    # JSON codes in, a PNG strip of the batch out (left to right).
    strip = post_json(base, "/v1/decode", {"codes": [[0.0, 0.0], [1.0, -1.0]]}, accept="image/png").image()
    assert strip.shape == (16, 32)
    np.testing.assert_allclose(
        strip[:, 16:], (vae.decode(np.array([[1.0, -1.0]]))[0, 0] * 255).round(), atol=1
    )


def test_multipart_upload_of_several_images(base: str, vae: AutoencoderRuntime, images: np.ndarray) -> None:
    boundary = "aeflow-test-boundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d{i}.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + png_of(image)
        + b"\r\n"
        for i, image in enumerate(images)
    )
    body = parts + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    codes = request(base, "POST", "/v1/encode", body, headers).json()["codes"]
    np.testing.assert_allclose(codes, vae.encode(images), atol=1e-5)


def test_generate_is_seeded_and_capped(base: str, vae: AutoencoderRuntime) -> None:
    reply = post_json(base, "/v1/generate", {"n": 4, "seed": 7}).json()
    np.testing.assert_allclose(reply["images"], vae.sample(4, seed=7), atol=1e-5)
    too_many = post_json(base, "/v1/generate", {"n": 10_000})
    assert too_many.status == 422 and "n in [1, 64]" in too_many.json()["error"]


NOISE_PNG = png_of(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
J, P, R = "application/json", "image/png", "/v1/reconstruct"
NAN_IMAGE = json.dumps({"images": [[[0.5] * 15 + [float("nan")]] * 16]}).encode()
BAD_REQUESTS = [
    ("malformed JSON", R, b"{not json", J, 400, "not valid JSON"),
    ("JSON but not an object", "/v1/encode", b"[1, 2]", J, 400, "JSON object"),
    ("no images key", "/v1/encode", b'{"pictures": []}', J, 422, "images"),
    ("wrong shape", "/v1/encode", json.dumps({"images": [[1, 2, 3]]}).encode(), J, 422, "shape"),
    ("NaN", R, NAN_IMAGE, J, 422, "NaN"),
    ("out of range", R, json.dumps({"images": [[[2.0] * 16] * 16]}).encode(), J, 422, "[0, 1]"),
    ("strings", "/v1/decode", b'{"codes": [["a", "b"]]}', J, 422, "dtype"),
    ("code of the wrong size", "/v1/decode", b'{"codes": [[1, 2, 3]]}', J, 422, "(N, 2)"),
    ("batch over the cap", "/v1/decode", json.dumps({"codes": [[0, 0]] * 17}).encode(), J, 413, "of 16"),
    ("not an image", R, b"GIF89a....", P, 422, "not an image"),
    ("truncated PNG", R, NOISE_PNG[: len(NOISE_PNG) // 2], P, 422, "truncated"),
    ("image bomb", R, png_declaring(5_000, 5_000), P, 422, "limit of 40000"),
    ("huge image bomb", R, png_declaring(50_000, 50_000), P, 422, "decompression"),
    ("unsupported type", R, b"abc", "text/plain", 415, "Content-Type"),
    ("deep nesting", "/v1/decode", b'{"codes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", J, 400, "JSON"),
    ("body over the cap", R, b"0" * (300 * 1024), J, 413, "over the limit"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_requests_are_json_4xx_and_the_server_keeps_serving(
    base: str, path: str, body: bytes, ctype: str, status: int, message: str
) -> None:
    reply = request(base, "POST", path, body, {"Content-Type": ctype})
    assert reply.status == status, reply.body
    error = reply.json()
    assert error["status"] == status and message in error["error"], error
    assert post_json(base, "/v1/decode", {"codes": [[0.0, 0.0]]}).status == 200


def test_chunked_body_over_the_cap_is_refused(base: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"1" * 10_000

    reply = request(base, "POST", "/v1/reconstruct", chunks(), {"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert reply.status == 413 and "over the limit" in reply.json()["error"]


def test_generate_on_a_plain_autoencoder_is_a_clear_422(tmp_path: Path) -> None:
    rt = AutoencoderRuntime(export_tiny(tmp_path, "denoiser", *DENOISE).folder)
    with running_server(create_app(rt)) as url:
        reply = post_json(url, "/v1/generate", {"n": 2})
        assert reply.status == 422 and "no prior to sample from" in reply.json()["error"]
        assert request(url, "GET", "/v1/metadata").json()["service"]["latent_plane"] is False
