"""Turning what callers have (arrays, PIL images, files) into the float32 batches the graphs take, and back.

Imports numpy and pillow only, like `components.runtime`: downstream apps that serve an export must
not need torch. The rules are deliberately few so a caller can predict them:

- integer arrays are 0..255 pixel values (uint8 most often), float arrays are already in the
  model's value range ([0, 1]); anything outside is refused, never silently clipped;
- (N, H, W) is a batch of grayscale images, (N, C, H, W) a batch, (C, H, W) / (H, W) one image,
  and (N, H, W, C) is accepted when the last axis is plainly the channel axis;
- PIL images and image files are converted to the model's channel count (L or RGB) and resized to
  its input size when the graph has a fixed size, because a drawing or a photo rarely matches it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

# A dimension the graph leaves free (a symbolic axis in the ONNX input, e.g. "height").
Dim = int | None
ImageLike = str | Path | Image.Image


class InputError(ValueError):
    """An array handed to the runtime does not have the shape or values the model expects."""


def _describe(shape: Sequence[Dim]) -> str:
    return "(N, " + ", ".join("any" if d is None else str(d) for d in shape) + ")"


def _matches(actual: Sequence[int], expected: Sequence[Dim]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(e is None or a == e for a, e in zip(actual, expected, strict=True))


def _add_axes(array: np.ndarray, shape: Sequence[Dim]) -> np.ndarray:
    """Give an array its batch and channel axes, following the module's documented layouts."""
    channels = shape[0] if len(shape) == 3 else None
    if len(shape) == 3:
        if array.ndim == 2:  # (H, W): one grayscale image
            array = array[None, None] if channels == 1 else array
        elif array.ndim == 3:
            # One channel: (N, H, W) is a batch without its channel axis (one (1, H, W) image reads the
            # same way); otherwise it is a single image without its batch axis.
            array = array[:, None] if channels == 1 else array[None]
        elif array.ndim == 4 and channels is not None and array.shape[1] != channels == array.shape[-1]:
            array = np.moveaxis(array, -1, 1)  # channels-last, as PIL and most image libraries give it
    elif array.ndim == len(shape):  # a single code without its batch axis
        array = array[None]
    return array


def as_batch(
    data: Any, shape: Sequence[Dim], what: str, value_range: tuple[float, float] | None = (0.0, 1.0)
) -> np.ndarray:
    """A contiguous float32 (N, *shape) batch from an array-like, or an InputError that says what to pass.

    `value_range` is checked for images (None for codes, which have no fixed range).
    """
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise InputError(f"{what}: expected a rectangular array of shape {_describe(shape)}: {err}") from None
    if array.dtype.kind not in "biuf":  # bool, signed, unsigned, float (complex, object, str: no)
        raise InputError(f"{what}: expected numbers of shape {_describe(shape)}, got dtype {array.dtype}")
    given = tuple(array.shape)
    array = _add_axes(array, shape)
    if array.ndim != len(shape) + 1 or not _matches(array.shape[1:], shape):
        hint = ""
        if len(shape) == 3 and array.ndim == 4 and shape[0] is not None and array.shape[1] != shape[0]:
            hint = f"; the model takes {shape[0]} channel(s), got {array.shape[1]}"
        raise InputError(f"{what}: expected shape {_describe(shape)}, got {given}{hint}")
    if array.shape[0] == 0:
        raise InputError(f"{what}: the batch is empty; expected at least one of shape {_describe(shape)}")
    if array.dtype.kind in "iu" and value_range is not None:
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"{what}: integer pixels must be 0..255, got {lo}..{hi}; pass uint8 images or floats in "
                f"[{value_range[0]:g}, {value_range[1]:g}]"
            )
        scaled = array.astype(np.float32) / 255
        return np.ascontiguousarray(value_range[0] + scaled * (value_range[1] - value_range[0]))
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, refused just below
            array = np.ascontiguousarray(array, dtype=np.float32)
    if value_range is None:
        if not np.isfinite(array).all():
            raise InputError(f"{what}: contains NaN or infinite values; expected finite numbers")
    else:
        # min/max propagate NaN and show ±inf, so they double as the finiteness check (one pass
        # fewer: at batch 1 these checks are a visible share of a 0.1 ms session call).
        lo_f, hi_f = float(array.min()), float(array.max())
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
            raise InputError(f"{what}: contains NaN or infinite values; expected finite numbers")
        tolerance = 1e-6
        if lo_f < value_range[0] - tolerance or hi_f > value_range[1] + tolerance:
            raise InputError(
                f"{what}: float pixels must lie in [{value_range[0]:g}, {value_range[1]:g}], got "
                f"{lo_f:.4g}..{hi_f:.4g}; scale them (uint8 images are divided by 255 for you)"
            )
    return array


def open_image(source: ImageLike | bytes, max_pixels: int | None = None) -> Image.Image:
    """A decoded PIL image from a path, bytes or an image; the declared size is checked before decoding.

    Checking `max_pixels` against the header keeps a tiny file that declares a huge canvas (an
    image bomb) from ever being decompressed.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        name = "upload" if isinstance(source, bytes) else str(source)
        try:
            image = Image.open(BytesIO(source) if isinstance(source, bytes) else Path(source))
        except FileNotFoundError:
            raise InputError(f"{name}: no such file; expected an image file (PNG, JPEG, BMP)") from None
        except Image.DecompressionBombError as err:
            raise InputError(
                f"{name}: refused as a decompression bomb ({err}); send a smaller image"
            ) from None
        except UnidentifiedImageError:
            raise InputError(f"{name}: not an image Pillow can read; expected PNG, JPEG or BMP") from None
        except (OSError, ValueError) as err:
            raise InputError(f"{name}: not a readable image (expected PNG, JPEG or BMP): {err}") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(
            f"image of {width}×{height} = {width * height} pixels is over the limit of {max_pixels}; "
            "send a smaller image"
        )
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, ValueError) as err:
        raise InputError(f"image could not be decoded (truncated or corrupt?): {err}") from None
    return image


def image_to_array(image: Image.Image, shape: Sequence[Dim]) -> np.ndarray:
    """(C, H, W) uint8 of a PIL image in the model's channel count, resized where the graph fixes the size."""
    channels, height, width = shape
    mode = "L" if channels == 1 else "RGB"
    if channels not in (1, 3, None):
        raise InputError(f"the model takes {channels} channels; images can be given for 1 or 3 channels only")
    if image.mode in ("RGBA", "LA", "P"):  # composite transparency onto black, the digits' background
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert(mode)
    if height is not None and width is not None and image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def images_to_batch(images: Any, shape: Sequence[Dim], what: str = "images") -> np.ndarray:
    """Arrays pass through `as_batch`; PIL images, paths or lists of them are read and stacked first."""
    if isinstance(images, np.ndarray):  # the common case, first: no per-item scan
        return as_batch(images, shape, what)
    items = images if isinstance(images, list | tuple) else [images]
    if items and all(isinstance(item, str | Path | Image.Image) for item in items):
        arrays = [image_to_array(open_image(item), shape) for item in items]
        sizes = {a.shape for a in arrays}
        if len(sizes) > 1:
            raise InputError(f"{what}: images of different sizes {sorted(sizes)} cannot form one batch")
        return as_batch(np.stack(arrays), shape, what)
    return as_batch(images, shape, what)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Model output in [0, 1] as uint8 pixels, rounded (not truncated) so a round trip is exact."""
    return (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)


def to_pil(image: np.ndarray) -> Image.Image:
    """One (C, H, W) image in [0, 1] as a PIL image (L for one channel, RGB for three)."""
    pixels = to_uint8(image)
    return Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1))


def png_bytes(images: np.ndarray) -> bytes:
    """A (N, C, H, W) batch as one PNG: the images side by side, left to right, in batch order."""
    strip = np.concatenate(list(images), axis=-1) if len(images) > 1 else images[0]
    buffer = BytesIO()
    to_pil(strip).save(buffer, format="PNG")
    return buffer.getvalue()
