"""Run an exported autoencoder with onnxruntime alone: this module imports numpy and onnxruntime only.

Downstream apps load `exported/<name>/`; the manifest says what the graphs expect, and its
hashes are checked before a session is created, so a truncated or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


class ModelFolderError(ValueError):
    """The export folder is missing, incomplete, or does not match its manifest."""


class InputError(ValueError):
    """An array handed to the runtime does not have the shape or values the model expects."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OnnxAutoencoder:
    def __init__(
        self,
        folder: str | Path,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            raise ModelFolderError(
                f"{manifest_path} not found: expected an export folder made by `aeflow run` "
                "(encoder.onnx, decoder.onnx, model.onnx, manifest.json)"
            )
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ModelFolderError(f"{manifest_path} is not valid JSON: {err}") from None
        for filename, expected in self.manifest.get("files", {}).items():
            path = self.folder / filename
            if not path.is_file():
                raise ModelFolderError(f"{path} is missing; re-export the model")
            if _sha256(path) != expected:
                raise ModelFolderError(
                    f"{path} does not match the sha256 in its manifest (truncated, edited or from "
                    "another export); re-export the model"
                )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        chosen = providers or ["CPUExecutionProvider"]
        self.sessions = {
            role: ort.InferenceSession(str(self.folder / spec["file"]), options, providers=chosen)
            for role, spec in self.manifest["graphs"].items()
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input"]["shape"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["latent"]["shape"])

    def _batch(self, array: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
        array = np.asarray(array)
        if array.ndim == len(shape):
            # One channel: (N, H, W) is a batch without its channel axis (one (1, H, W) image reads the
            # same way); otherwise it is a single image without its batch axis.
            array = array[:, None] if shape[0] == 1 else array[None]
        if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape:
            raise InputError(f"{what}: expected shape (N, {', '.join(map(str, shape))}), got {array.shape}")
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputError(f"{what}: contains NaN or infinite values")
        return array

    def encode(self, images: np.ndarray) -> np.ndarray:
        batch = self._batch(images, self.input_shape, "images")
        return self.sessions["encoder"].run(None, {"images": batch})[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        batch = self._batch(codes, self.latent_shape, "codes")
        return self.sessions["decoder"].run(None, {"code": batch})[0]

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        batch = self._batch(images, self.input_shape, "images")
        return self.sessions["model"].run(None, {"images": batch})[0]
