"""One rule for turning any decoded image file into 8-bit grayscale or RGB, whatever its mode.

A folder of images collected by hand mixes palette PNGs, transparent icons, 16-bit scans and CMYK
JPEGs. Pillow's plain `convert("L")` clips 16-bit values at 255 (a 16-bit scan turns white) and
drops transparency without looking at it, so a transparent pixel keeps whatever colour it hides.
Here 16-bit values are scaled to 8 bits and transparency is composited onto black, the digits'
background and what `components.runtime_io` does for images sent to a served model, so a
model sees the same pixels in training and in service.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
TRANSPARENT_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grayscale as 8-bit L: 0..65535 maps linearly onto 0..255."""
    values = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), mode="L")


def to_mode(image: Image.Image, mode: Literal["L", "RGB"]) -> Image.Image:
    """`image` as 8-bit `mode`: 16-bit scaled down, transparency over black, palettes and CMYK expanded."""
    if image.mode in SIXTEEN_BIT_MODES:
        image = _eight_bit(image)
    elif image.mode in TRANSPARENT_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image if image.mode == mode else image.convert(mode)
