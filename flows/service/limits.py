"""What one request may ask of the server, so a single client cannot exhaust its memory or cores."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServiceLimits(BaseModel):
    """Caps checked before any decoding or inference; a request over one gets a 413/422, never a 5xx.

    The defaults fit digit-sized models on a small machine: 64 images of up to 4 megapixels each
    would already be a lot of work, and an 8 MiB body holds hundreds of PNG digits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body, in bytes")
    max_batch: int = Field(256, ge=1, description="most images or codes in one request")
    max_pixels: int = Field(
        4_000_000,
        ge=64,
        description="most pixels in one uploaded image (read from its header, before decoding)",
    )
    max_generate: int = Field(64, ge=1, description="most samples one /v1/generate may ask for")
