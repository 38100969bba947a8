"""The FastAPI app: one AutoencoderRuntime (one InferenceSession per graph) shared by every request.

Inference runs in Starlette's thread pool (onnxruntime's `run` is thread-safe and releases the
GIL), so the event loop keeps accepting requests while a batch is computed. Client mistakes are
JSON 4xx answers; only a bug in the service itself can give a 5xx, and it is JSON too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from components.runtime import AutoencoderRuntime
from components.runtime_io import InputError
from flows.service.errors import ApiError, error_body
from flows.service.limits import ServiceLimits
from flows.service.middleware import BodyLimit
from flows.service.payload import images_response, labels_field, parse_json, read_codes, read_images
from flows.service.schemas import ApiShapes

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("aeflow.service")
T = TypeVar("T")


async def _compute(fn: Callable[[], T]) -> T:
    """Run conversion + inference off the event loop; the runtime's InputError becomes a 422."""
    try:
        return await run_in_threadpool(fn)
    except InputError as err:
        raise ApiError(422, str(err)) from None


def _service_info(runtime: AutoencoderRuntime, limits: ServiceLimits) -> dict[str, Any]:
    return {
        "limits": limits.model_dump(),
        "providers": runtime.providers,
        "image_dims": list(runtime.image_dims),
        "code_dims": list(runtime.code_dims),
        "latent_plane": runtime.latent_shape == (2,),
    }


def _http_message(request: Request, err: HTTPException) -> str:
    if err.status_code == 404:
        return f"no such endpoint {request.url.path!r}; the endpoints are listed at /docs"
    if err.status_code == 405:
        allowed = (err.headers or {}).get("Allow", "another method")
        return f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    return str(err.detail)


def create_app(runtime: AutoencoderRuntime, limits: ServiceLimits | None = None) -> FastAPI:
    """The service for one loaded model; `limits` caps body size, batch size and pixels per image."""
    limits = limits or ServiceLimits()
    shapes = ApiShapes.of(runtime, limits)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One warm-up pass through every graph: the first real request then pays no initialisation.
        warm = np.zeros((1, *[d or 32 for d in runtime.image_dims]), dtype=np.float32)
        labels = [0] if runtime.conditional else None
        await run_in_threadpool(lambda: runtime.decode(runtime.encode(warm, labels), labels))
        await run_in_threadpool(runtime.reconstruct, warm, labels)
        state["ready"] = True
        yield

    app = FastAPI(
        title=f"aeflow: {runtime.manifest.get('name', 'autoencoder')}",
        description="Encode, decode, reconstruct and generate with an exported autoencoder (onnxruntime).",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.status, err.message), status_code=err.status)

    @app.exception_handler(InputError)
    async def input_error(_: Request, err: InputError) -> JSONResponse:
        return JSONResponse(error_body(422, str(err)), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        # Starlette's own refusals (no such route, wrong method, a malformed multipart form) in the
        # service's format rather than FastAPI's {"detail": ...}.
        message = _http_message(request, err)
        return JSONResponse(error_body(err.status_code, message), err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return JSONResponse(error_body(422, problems or "invalid request"), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body(500, f"internal error: {type(err).__name__}"), status_code=500)

    @app.get("/", include_in_schema=False)
    async def explorer() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The sessions are loaded and warmed up")
    async def readyz() -> JSONResponse:
        body = {"ready": state["ready"], "providers": runtime.providers}
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/v1/metadata", summary="The export's manifest, plus the service's limits and providers")
    async def metadata() -> dict[str, Any]:
        return {**runtime.manifest, "service": _service_info(runtime, limits)}

    @app.post("/v1/encode", summary="Images (PNG or JSON) → codes (JSON)", openapi_extra=shapes.images_body())
    async def encode(request: Request) -> dict[str, Any]:
        batch, labels = await read_images(request, await request.body(), runtime, limits)
        codes = await _compute(lambda: runtime.encode(batch, labels))
        return {"shape": list(codes.shape), "codes": np.round(codes, 6).tolist()}

    @app.post(
        "/v1/decode",
        summary="Codes (JSON) → images (PNG or JSON by Accept)",
        openapi_extra=shapes.codes_body(),
    )
    async def decode(request: Request) -> Response:
        codes, labels = read_codes(await request.body(), limits)
        return images_response(request, await _compute(lambda: runtime.decode(codes, labels)))

    @app.post(
        "/v1/reconstruct",
        summary="Images → denoised / upscaled / reconstructed images, by kind",
        openapi_extra=shapes.images_body(),
    )
    async def reconstruct(request: Request) -> Response:
        batch, labels = await read_images(request, await request.body(), runtime, limits)
        return images_response(request, await _compute(lambda: runtime.reconstruct(batch, labels)))

    @app.post(
        "/v1/generate",
        summary="Samples from the prior (vae, cvae, aae): JSON {n, seed, labels}",
        openapi_extra=shapes.generate_body(),
    )
    async def generate(request: Request) -> Response:
        body = await request.body()
        data = parse_json(body) if body.strip() else {}
        n, seed = data.get("n", 8), data.get("seed", 0)
        if (  # `type(...) is int`: JSON true and false are bools, which isinstance(..., int) lets through
            type(n) is not int
            or type(seed) is not int
            or not 1 <= n <= limits.max_generate
            or not 0 <= seed < 2**63
        ):
            expected = f"integers n in [1, {limits.max_generate}] and seed in [0, 2^63)"
            raise ApiError(422, f"expected {expected}, got n={n!r}, seed={seed!r}")
        labels = labels_field(data.get("labels"))
        return images_response(request, await _compute(lambda: runtime.sample(n, seed, labels)))

    return app
