"""From an HTTP request to the arrays the runtime takes, and from output images back to PNG or JSON.

Images arrive as a PNG (or JPEG/BMP) body, as multipart uploads, or as JSON arrays; codes and
generation settings arrive as JSON. Each limit is checked before the expensive step it guards:
the batch size before conversion, an image's declared pixel count before it is decompressed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from components.runtime import AutoencoderRuntime
from components.runtime_io import InputError, image_to_array, png_bytes
from flows.service.errors import ApiError
from flows.service.limits import ServiceLimits
from flows.service.uploads import open_upload

IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ApiError(400, f"the body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f'expected a JSON object such as {{"images": [...]}}, got {type(data).__name__}')
    return data


def _check_batch(items: Any, what: str, limits: ServiceLimits) -> None:
    if not isinstance(items, list) or not items:
        raise ApiError(422, f"{what}: expected a non-empty JSON array (a batch), got {type(items).__name__}")
    if len(items) > limits.max_batch:
        raise ApiError(413, f"{what}: {len(items)} items is over the batch limit of {limits.max_batch}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a label


def labels_field(raw: Any) -> Any:
    """Labels from JSON (an integer or a flat list of them) or a form/query value ("3" or "1,2,3").

    Checked here, not only in the runtime: a nested or ragged list would otherwise reach numpy,
    whose error is not the caller's kind of mistake (a 500 instead of a 422).
    """
    if raw is None or _is_integer(raw):
        return raw
    if isinstance(raw, list):
        if not all(_is_integer(item) for item in raw):
            shown = json.dumps(raw)[:80]
            raise InputError(f"labels: expected an integer or a flat list of integers, got {shown}")
        return raw
    if isinstance(raw, str):
        try:
            return [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise InputError(f"labels: expected integers such as 3 or 1,2,3, got {raw!r}") from None
    raise InputError(f"labels: expected an integer or a list of integers, got {type(raw).__name__}")


def _decoded(data: bytes, runtime: AutoencoderRuntime, limits: ServiceLimits) -> np.ndarray:
    return image_to_array(open_upload(data, limits.max_pixels), runtime.image_dims)


def _check_pixels(batch: np.ndarray, limits: ServiceLimits) -> None:
    pixels = batch.shape[-1] * batch.shape[-2]
    if pixels > limits.max_pixels:
        raise ApiError(413, f"images of {pixels} pixels are over the limit of {limits.max_pixels} per image")


async def read_images(
    request: Request, body: bytes, runtime: AutoencoderRuntime, limits: ServiceLimits
) -> tuple[np.ndarray, Any]:
    """(float32 batch, labels) from a JSON, image or multipart request; InputError or ApiError if bad."""
    kind = media_type(request)
    labels: Any = labels_field(request.query_params.get("labels"))
    if kind == "application/json":
        data = parse_json(body)
        _check_batch(data.get("images"), "images", limits)  # the body cap already bounds the JSON's size
        batch = runtime.images(data["images"])
        labels = labels_field(data.get("labels", labels))
    elif kind in IMAGE_TYPES:
        batch = runtime.images(_decoded(body, runtime, limits)[None])
    elif kind == "multipart/form-data":
        try:
            form = await request.form(max_files=limits.max_batch, max_fields=limits.max_batch + 8)
        except HTTPException as err:  # Starlette's 400 for too many parts is the batch limit: a 413
            if "Too many" in str(err.detail):
                raise ApiError(413, f"multipart upload: {err.detail} (the batch limit)") from None
            raise ApiError(err.status_code, f"malformed multipart upload: {err.detail}") from None
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise ApiError(
                422, "multipart upload without a file: send one or more image files (field 'image')"
            )
        arrays = [_decoded(await upload.read(), runtime, limits) for upload in uploads]
        if len({a.shape for a in arrays}) > 1:
            raise InputError(f"uploaded images have different sizes {sorted({a.shape for a in arrays})}")
        batch = runtime.images(np.stack(arrays))
        field = form.get("labels")
        labels = labels_field(field if isinstance(field, str) else labels)
    else:
        raise ApiError(
            415,
            f'unsupported Content-Type {kind or "(none)"!r}: send application/json {{"images": [...]}}, '
            "an image/png body, or multipart/form-data with image files",
        )
    _check_pixels(batch, limits)
    return batch, labels


def read_codes(body: bytes, limits: ServiceLimits) -> tuple[Any, Any]:
    """(codes, labels) from `{"codes": [[...], ...], "labels": ...}`; conversion happens in the runtime."""
    data = parse_json(body)
    _check_batch(data.get("codes"), "codes", limits)
    return data["codes"], labels_field(data.get("labels"))


def wants_png(request: Request) -> bool:
    """PNG when the client's Accept names image/png before (or instead of) JSON; JSON otherwise."""
    accept = request.headers.get("accept", "").lower()
    png, js = accept.find("image/png"), accept.find("application/json")
    return png >= 0 and (js < 0 or png < js)


def images_response(request: Request, images: np.ndarray) -> Response:
    """A PNG strip of the batch (left to right) or JSON `{"shape": [...], "images": [...]}` by Accept."""
    headers = {"X-Image-Count": str(len(images)), "X-Image-Shape": ",".join(map(str, images.shape[1:]))}
    if wants_png(request):
        return Response(png_bytes(images), media_type="image/png", headers=headers)
    payload = {"shape": list(images.shape), "images": np.round(images, 6).tolist()}
    return Response(json.dumps(payload), media_type="application/json", headers=headers)
