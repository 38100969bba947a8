"""The request bodies of the API, described for OpenAPI (and so for /docs, clients and schemathesis).

The routes read their bodies themselves (`flows.service.payload`): one route takes a PNG body,
multipart uploads or JSON, and every limit is checked before the expensive step it guards, which
FastAPI's own body parsing would not do. The pydantic models here describe the JSON bodies
rather than parse them (the schema is the stricter side: the service ignores unknown keys);
`ApiShapes` then writes the served model's shapes (image and code dimensions, label classes) and
the service's limits into them, so a client or a fuzzer that follows the schema sends requests
the model can run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.runtime import AutoencoderRuntime
from flows.service.limits import ServiceLimits

LABELS_DOC = "Class labels for a conditional model (cvae): one per item, or one integer for all."


class ImagesRequest(BaseModel):
    """A batch of images as nested arrays: (N, H, W) grayscale or (N, C, H, W); 0..255 or [0, 1]."""

    model_config = ConfigDict(extra="forbid")
    images: list[Any] = Field(min_length=1, description="The batch; one entry per image.")


class CodesRequest(BaseModel):
    """A batch of codes, each of the shape `code_dims` in /v1/metadata."""

    model_config = ConfigDict(extra="forbid")
    codes: list[Any] = Field(min_length=1, description="The batch; one code per entry.")


class GenerateRequest(BaseModel):
    """How many samples to draw from the prior, with which seed (same seed, same samples)."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(8, ge=1, description="Number of samples.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of the draw.")


BINARY = {"schema": {"type": "string", "format": "binary"}}
PIXEL = {"type": "number", "minimum": 0, "maximum": 1}  # floats in [0, 1]; uint8 0..255 works too
CODE_VALUE = {"type": "number", "minimum": -1e6, "maximum": 1e6}


def _nested(dims: tuple[int | None, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema for nested arrays of `dims` (None: any length, at least one)."""
    schema = leaf
    for dim in reversed(dims):
        schema = {
            "type": "array",
            "items": schema,
            "minItems": dim or 1,
            **({"maxItems": dim} if dim else {}),
        }
    return schema


@dataclass(frozen=True)
class ApiShapes:
    """What the schema says about the one model a service runs, and the limits it enforces."""

    image_dims: tuple[int | None, ...]
    code_dims: tuple[int | None, ...]
    num_classes: int | None
    limits: ServiceLimits

    @classmethod
    def of(cls, runtime: AutoencoderRuntime, limits: ServiceLimits) -> ApiShapes:
        classes = int(runtime.manifest["num_classes"]) if runtime.conditional else None
        return cls(tuple(runtime.image_dims), tuple(runtime.code_dims), classes, limits)

    def _json(self, model: type[BaseModel], batch: str | None, item: dict[str, Any] | None) -> dict[str, Any]:
        schema = model.model_json_schema()
        schema.pop("title", None)
        if batch is not None and item is not None:
            schema["properties"][batch] |= {"items": item, "maxItems": self.limits.max_batch}
        if self.num_classes is not None:  # conditional: labels are required, in [0, classes)
            label = {"type": "integer", "minimum": 0, "maximum": self.num_classes - 1}
            schema["properties"]["labels"] = {
                "anyOf": [label, {"type": "array", "items": label, "minItems": 1}],
                "description": LABELS_DOC,
            }
            schema.setdefault("required", []).append("labels")
        return schema

    def _image_item(self) -> dict[str, Any]:
        channels, *size = self.image_dims
        forms = [_nested(self.image_dims, PIXEL)]
        if channels == 1:  # (N, H, W): grayscale without its channel axis
            forms.append(_nested(tuple(size), PIXEL))
        return {"anyOf": forms} if len(forms) > 1 else forms[0]

    def images_body(self) -> dict[str, Any]:
        """`openapi_extra` for /v1/encode and /v1/reconstruct: JSON arrays, one image body, or uploads."""
        limits = self.limits
        multipart = {
            "type": "object",
            "properties": {
                "image": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "minItems": 1,
                    "maxItems": limits.max_batch,
                },
                "labels": {"type": "string", "description": "e.g. 3 or 1,2,3"},
            },
            "required": ["image"],
            "additionalProperties": False,
        }
        description = (
            f"Up to {limits.max_batch} images of at most {limits.max_pixels} pixels each, in a body of "
            f"at most {limits.max_body_bytes} bytes: JSON arrays, one PNG/JPEG/BMP body (labels in "
            "the query), or multipart files in the field 'image'."
        )
        content = {
            "application/json": {"schema": self._json(ImagesRequest, "images", self._image_item())},
            "image/png": BINARY,
            "image/jpeg": BINARY,
            "image/bmp": BINARY,
            "multipart/form-data": {"schema": multipart},
        }
        return {"requestBody": {"required": True, "description": description, "content": content}}

    def codes_body(self) -> dict[str, Any]:
        """`openapi_extra` for /v1/decode."""
        schema = self._json(CodesRequest, "codes", _nested(self.code_dims, CODE_VALUE))
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

    def generate_body(self) -> dict[str, Any]:
        """`openapi_extra` for /v1/generate; without a body: 8 samples, seed 0."""
        schema = self._json(GenerateRequest, None, None)
        schema["properties"]["n"]["maximum"] = self.limits.max_generate
        required = self.num_classes is not None
        return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
