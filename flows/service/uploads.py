"""Uploaded image bytes to a decoded PIL image, with only the formats the API names and a pixel cap.

Pillow can read dozens of formats, some rarely exercised (and a few that hand the file to outside
programs); the service promises PNG, JPEG and BMP, so only those decoders ever see a client's
bytes. The declared size is checked from the header before any pixel is decompressed
(`components.runtime_io.open_image` does that), and `install_pillow_guard` lowers Pillow's own
decompression-bomb limit to the service's, for any other code path in the server process.
"""

from __future__ import annotations

import warnings
from io import BytesIO

from PIL import Image, UnidentifiedImageError

from components.runtime_io import InputError, open_image

FORMATS = ("PNG", "JPEG", "BMP")


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """A decoded image from an upload; InputError for another format, a bomb or a broken file."""
    try:
        image = Image.open(BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(f"upload: refused as a decompression bomb ({err}); send a smaller image") from None
    except UnidentifiedImageError:
        raise InputError(
            f"upload: not an image in an accepted format; send {', '.join(FORMATS)} (by its content)"
        ) from None
    except (OSError, ValueError) as err:
        raise InputError(f"upload: not a readable image (expected PNG, JPEG or BMP): {err}") from None
    return open_image(image, max_pixels=max_pixels)


def install_pillow_guard(max_pixels: int) -> None:
    """Make Pillow itself refuse any image over `max_pixels` in this process (a server's, not a test's).

    Pillow warns above `MAX_IMAGE_PIXELS` and raises only above twice that; the warning becomes the
    error here, so the limit holds for every decode, not only the ones that check the header first.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
