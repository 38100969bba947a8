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

    def _labels(self, labels: np.ndarray | list[int] | None, n: int) -> dict[str, np.ndarray]:
        if not self.manifest.get("conditional"):
            return {}
        if labels is None:
            raise InputError("this model is conditional: pass one class label per image")
        array = np.asarray(labels, dtype=np.int64).reshape(-1)
        classes = int(self.manifest["num_classes"])
        if len(array) != n or array.min(initial=0) < 0 or array.max(initial=0) >= classes:
            raise InputError(f"labels: expected {n} integers in [0, {classes}), got {array.tolist()[:10]}")
        return {"labels": array}

    def _run(self, role: str, first: str, batch: np.ndarray, labels: object) -> list[np.ndarray]:
        feeds = {first: batch, **self._labels(labels, len(batch))}  # type: ignore[arg-type]
        return self.sessions[role].run(None, feeds)

    def encode(self, images: np.ndarray, labels: np.ndarray | list[int] | None = None) -> np.ndarray:
        """The code of each image (a VAE's posterior mean)."""
        batch = self._batch(images, self.input_shape, "images")
        return self._run("encoder", "images", batch, labels)[0]

    def posterior(
        self, images: np.ndarray, labels: np.ndarray | list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log_var) of a variational model's posterior; sample outside with exp(½·log_var)."""
        if not self.manifest.get("variational"):
            raise InputError(f"model kind {self.manifest['model_kind']!r} is not variational")
        mean, log_var = self._run(
            "encoder", "images", self._batch(images, self.input_shape, "images"), labels
        )
        return mean, log_var

    def decode(self, codes: np.ndarray, labels: np.ndarray | list[int] | None = None) -> np.ndarray:
        batch = self._batch(codes, self.latent_shape, "codes")
        return self._run("decoder", "code", batch, labels)[0]

    def reconstruct(self, images: np.ndarray, labels: np.ndarray | list[int] | None = None) -> np.ndarray:
        batch = self._batch(images, self.input_shape, "images")
        return self._run("model", "images", batch, labels)[0]
