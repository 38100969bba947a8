"""What a hostile or careless client can send the service, on a real loopback socket.

Paths that try to leave the app, formats the API does not promise, image bombs in every way of
uploading, and the inputs the fuzzer once turned into a 500. Every refusal is a JSON 4xx in the
service's own format, and the server keeps serving afterwards.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from benchmarks.serve_http import png_declaring
from components.runtime import AutoencoderRuntime
from components.runtime_io import InputError
from flows.service.app import create_app
from flows.service.limits import ServiceLimits
from flows.service.server import running_server
from flows.service.uploads import install_pillow_guard, open_upload
from tests.exports import export_tiny
from tests.flows.http_helpers import png_of, post_json, request

LIMITS = ServiceLimits(max_body_bytes=256 * 1024, max_batch=16, max_pixels=200 * 200)
CVAE = ("model.kind=cvae", "model.architecture=fc", "model.hidden=[16]", "model.latent_dim=2",
        "model.num_classes=3")  # fmt: skip
SECRET = "aeflow-secret-4f1c"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("served")
    folder = export_tiny(root, "cvae", *CVAE).folder
    (root / "secret.txt").write_text(SECRET)  # next to the model folder: must never be served
    with running_server(create_app(AutoencoderRuntime(folder), LIMITS)) as url:
        yield url


def _error(reply_status: int, body: bytes) -> str:
    payload = json.loads(body)
    assert set(payload) == {"error", "status"} and payload["status"] == reply_status, payload
    return str(payload["error"])


TRAVERSALS = [
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2Fsecret.txt",
    "/static/../../secret.txt",
    "/v1/metadata/../../secret.txt",
    "//etc/passwd",
    "/docs/%2e%2e/%2e%2e/etc/passwd",
    "/index.html",
    "/static/index.html",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_paths_cannot_reach_files_outside_the_app(base: str, path: str) -> None:
    reply = request(base, "GET", path)
    assert reply.status == 404, (path, reply.status, reply.body[:200])
    assert "no such endpoint" in _error(404, reply.body)
    assert SECRET.encode() not in reply.body and b"root:" not in reply.body


def test_no_route_takes_a_name_or_path_from_the_request(base: str) -> None:
    """The service serves the one model it was started with: no path parameter can pick a file."""
    paths = request(base, "GET", "/openapi.json").json()["paths"]
    assert all("{" not in path for path in paths), sorted(paths)
    for operation in (op for item in paths.values() for op in item.values()):
        assert all(p["in"] != "path" for p in operation.get("parameters", [])), operation
    # Query parameters naming a model or a file are ignored, not followed.
    page = request(base, "GET", "/?model=../secret.txt&path=/etc/passwd")
    assert page.status == 200 and SECRET.encode() not in page.body and b"Latent explorer" in page.body
    meta = request(base, "GET", "/v1/metadata?model=../../etc/passwd").json()
    assert meta["name"] == "cvae"


def test_404_and_405_use_the_service_error_format(base: str) -> None:
    missing = request(base, "GET", "/v2/encode")
    assert missing.status == 404 and "/docs" in _error(404, missing.body)
    wrong = request(base, "GET", "/v1/encode")
    assert wrong.status == 405 and "use POST" in _error(405, wrong.body)
    assert wrong.headers["allow"] == "POST"
    broken_form = request(base, "POST", "/v1/encode", b"--x\r\nnonsense",
                          {"Content-Type": "multipart/form-data"})  # fmt: skip
    assert 400 <= broken_form.status < 500
    _error(broken_form.status, broken_form.body)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


DIGIT = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))
OTHER_FORMATS = {fmt: _encoded(DIGIT, fmt) for fmt in ("GIF", "TIFF", "PPM", "ICO", "WEBP")}


@pytest.mark.parametrize("fmt", list(OTHER_FORMATS))
def test_only_png_jpeg_and_bmp_are_decoded(base: str, fmt: str) -> None:
    data = OTHER_FORMATS[fmt]
    Image.open(io.BytesIO(data)).load()  # a good image Pillow reads: refused for its format only
    reply = request(base, "POST", "/v1/encode?labels=1", data, {"Content-Type": "image/png"})
    assert reply.status == 422 and "accepted format" in _error(422, reply.body)
    for fmt_ok in ("PNG", "JPEG", "BMP"):
        body = _encoded(DIGIT, fmt_ok)
        assert request(base, "POST", "/v1/encode?labels=1", body, {"Content-Type": "image/png"}).status == 200


def _multipart(files: list[bytes], labels: str = "1") -> tuple[bytes, dict[str, str]]:
    boundary = "aeflow-security"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f{i}.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    )
    label = f'--{boundary}\r\nContent-Disposition: form-data; name="labels"\r\n\r\n{labels}\r\n'.encode()
    body = parts + label + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_image_bombs_are_refused_in_every_upload_form(base: str) -> None:
    bomb = png_declaring(20_000, 20_000)  # 400 megapixels declared, a few hundred bytes sent
    assert len(bomb) < 1000
    small = png_of(np.zeros((16, 16), dtype=np.uint8))
    body, headers = _multipart([small, bomb, small])
    for reply in (
        request(base, "POST", "/v1/reconstruct?labels=1", bomb, {"Content-Type": "image/png"}),
        request(base, "POST", "/v1/encode", *_multipart([bomb])),
        request(base, "POST", "/v1/encode", body, headers),
    ):
        assert reply.status == 422 and "decompression bomb" in _error(422, reply.body)
    too_many, headers = _multipart([small] * 17)
    assert request(base, "POST", "/v1/encode", too_many, headers).status == 413
    assert request(base, "POST", "/v1/encode", *_multipart([small])).status == 200


BAD_LABELS = [
    ("/v1/decode", {"codes": [[0.0, 0.0], [1.0, 1.0]], "labels": [[1], [2, 0]]}),
    ("/v1/decode", {"codes": [[0.0, 0.0]], "labels": [[1]]}),
    ("/v1/decode", {"codes": [[0.0, 0.0]], "labels": [True]}),
    ("/v1/decode", {"codes": [[0.0, 0.0]], "labels": True}),
    ("/v1/generate", {"n": 2, "labels": [[1], [2, 0]]}),
    ("/v1/generate", {"n": True, "labels": 1}),
    ("/v1/generate", {"n": 2, "seed": False, "labels": 1}),
    ("/v1/generate", {"n": 2, "seed": 2**70, "labels": 1}),
    ("/v1/encode", {"images": np.zeros((1, 16, 16)).tolist(), "labels": [[0]]}),
]


@pytest.mark.parametrize(("path", "payload"), BAD_LABELS, ids=[json.dumps(p)[-40:] for _, p in BAD_LABELS])
def test_malformed_labels_and_booleans_are_422_not_500(base: str, path: str, payload: dict) -> None:
    reply = post_json(base, path, payload)
    assert reply.status == 422, reply.body
    _error(422, reply.body)
    assert post_json(base, "/v1/generate", {"n": 1, "labels": 2}).status == 200


def test_the_pillow_guard_refuses_big_images_in_every_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """`aeflow serve` lowers Pillow's own limit to --max-pixels; here in-process, restored afterwards."""
    picture = png_of(np.zeros((300, 300), dtype=np.uint8))  # 90,000 pixels
    assert open_upload(picture, max_pixels=10**6).size == (300, 300)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        install_pillow_guard(50_000)
        with pytest.raises(Image.DecompressionBombWarning):
            Image.open(io.BytesIO(picture))  # any code path, not only the service's
        with pytest.raises(InputError, match="decompression bomb"):
            open_upload(picture, max_pixels=10**6)
