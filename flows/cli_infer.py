"""`aeflow encode|reconstruct|denoise|upscale|generate|serve`: use an export from the command line.

Everything here runs on `components.runtime` (onnxruntime); the model is an `exported/<name>`
folder or a `models:/<name>@<alias>` registry URI. Inputs are image files (one image each) or
.npy arrays (a batch each); one summary line is printed per file written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from components.runtime import AutoencoderRuntime, InputError, ModelFolderError
from components.runtime_io import to_pil

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="exported/<name> folder or models:/<name>@<alias>.")
]
InputsArg = Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, BMP) or .npy arrays.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs (created if missing).")]
LabelOpt = Annotated[int | None, typer.Option("--label", help="Class label, for conditional models.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="onnxruntime intra-op threads for every call (default: batches sliced across the cores).",
    ),
]

# What each image command runs and which model kinds it makes sense for (None: every kind).
KIND_OF = {"denoise": "denoise", "upscale": "superres", "reconstruct": None}


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def load_runtime(model: str, threads: int | None = None) -> AutoencoderRuntime:
    try:
        return AutoencoderRuntime.load(model, intra_op_threads=threads)
    except (ModelFolderError, ValueError) as err:  # RegistryError is a ValueError too
        raise fail(str(err)) from None


def _read(path: Path, runtime: AutoencoderRuntime, codes: bool = False) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected an image file or a .npy array")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise InputError(f"{path}: not a readable .npy array: {err}") from None
        try:
            return runtime.codes(array) if codes else runtime.images(array)
        except InputError as err:  # name the file: several inputs may be given
            raise InputError(f"{path}: {err}") from None
    if codes:
        raise InputError(f"{path}: codes must be a .npy array of shape (N, {runtime.latent_shape})")
    return runtime.images([path])


def _labels(label: int | None, n: int) -> list[int] | None:
    return None if label is None else [label] * n


def _write_images(images: np.ndarray, source: Path | None, out: Path, stem: str) -> str:
    """A PNG for an image input (or each generated sample), a .npy batch for a .npy input."""
    if source is not None and source.suffix.lower() == ".npy":
        target = out / f"{stem}.npy"
        np.save(target, images)
        return f"{target} ({len(images)}×{'×'.join(map(str, images.shape[1:]))} float32)"
    targets = [
        out / (f"{stem}.png" if len(images) == 1 else f"{stem}-{i:03d}.png") for i in range(len(images))
    ]
    for image, target in zip(images, targets, strict=True):
        to_pil(image).save(target)
    size = "×".join(map(str, images.shape[1:]))
    return (
        f"{targets[0]} ({size})" if len(targets) == 1 else f"{targets[0]} … {targets[-1].name} ({size} each)"
    )


def _image_command(command: str, model: str, inputs: list[Path], out: Path, label: int | None) -> None:
    runtime = load_runtime(model)
    wanted = KIND_OF[command]
    if wanted is not None and runtime.kind != wanted:
        raise fail(
            f"{model} is a {runtime.kind!r} model; `{command}` needs a {wanted!r} model "
            "(`aeflow reconstruct` runs any kind)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for path in inputs:
        try:
            batch = _read(path, runtime)
            result = runtime.reconstruct(batch, _labels(label, len(batch)))
        except InputError as err:
            raise fail(str(err)) from None
        written = _write_images(result, path, out, path.stem)
        typer.echo(f"{path}: {len(batch)} image(s) {'×'.join(map(str, batch.shape[1:]))} → {written}")


def reconstruct(model: ModelOpt, inputs: InputsArg, out: OutOpt, label: LabelOpt = None) -> None:
    """Run the whole model: denoised, upscaled or reconstructed images, by the model's kind."""
    _image_command("reconstruct", model, inputs, out, label)


def denoise(model: ModelOpt, inputs: InputsArg, out: OutOpt, label: LabelOpt = None) -> None:
    """Denoise images with a `denoise` model."""
    _image_command("denoise", model, inputs, out, label)


def upscale(model: ModelOpt, inputs: InputsArg, out: OutOpt, label: LabelOpt = None) -> None:
    """Upscale low-resolution images with a `superres` model."""
    _image_command("upscale", model, inputs, out, label)


def encode(model: ModelOpt, inputs: InputsArg, out: OutOpt, label: LabelOpt = None) -> None:
    """Write the code of each input as `<name>.codes.npy` (N, *latent)."""
    runtime = load_runtime(model)
    out.mkdir(parents=True, exist_ok=True)
    for path in inputs:
        try:
            batch = _read(path, runtime)
            codes = runtime.encode(batch, _labels(label, len(batch)))
        except InputError as err:
            raise fail(str(err)) from None
        target = out / f"{path.stem}.codes.npy"
        np.save(target, codes)
        typer.echo(f"{path}: {len(batch)} image(s) → {target} (codes {'×'.join(map(str, codes.shape))})")


def generate(
    model: ModelOpt,
    out: OutOpt,
    inputs: Annotated[list[Path] | None, typer.Argument(help=".npy codes to decode; none: sample.")] = None,
    n: Annotated[int, typer.Option("--n", help="Samples to draw from the prior.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the prior draw.")] = 0,
    label: LabelOpt = None,
) -> None:
    """Decode .npy codes to images, or (no inputs) draw `--n` samples from a generative model's prior."""
    runtime = load_runtime(model)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if not inputs:
            images = runtime.sample(n, seed, _labels(label, n))
            written = _write_images(images, None, out, "sample")
            typer.echo(f"prior (seed {seed}): {n} sample(s) → {written}")
            return
        for path in inputs:
            codes = _read(path, runtime, codes=True)
            images = runtime.decode(codes, _labels(label, len(codes)))
            written = _write_images(images, None, out, path.stem.removesuffix(".codes"))
            typer.echo(f"{path}: {len(codes)} code(s) → {written}")
    except InputError as err:
        raise fail(str(err)) from None


def serve(
    model: ModelOpt,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 8 * 1024 * 1024,
    max_batch: Annotated[int, typer.Option(help="Most images or codes per request.")] = 256,
    max_pixels: Annotated[int, typer.Option(help="Most pixels per uploaded image.")] = 4_000_000,
    threads: ThreadsOpt = None,
) -> None:
    """Serve the model over HTTP (FastAPI, uvicorn): /v1/encode, decode, reconstruct, generate."""
    from pydantic import ValidationError

    from flows.service.app import create_app
    from flows.service.limits import ServiceLimits
    from flows.service.server import serve as run_server
    from flows.service.uploads import install_pillow_guard

    try:
        limits = ServiceLimits(max_body_bytes=max_body_bytes, max_batch=max_batch, max_pixels=max_pixels)
    except ValidationError as err:
        raise fail(f"invalid limits: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") from None
    install_pillow_guard(limits.max_pixels)
    runtime = load_runtime(model, threads)
    if runtime.provider_note:
        typer.secho(f"warning: {runtime.provider_note}", fg=typer.colors.YELLOW, err=True)
    typer.echo(
        f"serving {runtime.manifest.get('name')} ({runtime.kind}) on http://{host}:{port}/ (docs: /docs)"
    )
    run_server(create_app(runtime, limits), host, port)
