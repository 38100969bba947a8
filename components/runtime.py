"""Run an exported autoencoder with onnxruntime alone: this module imports numpy, onnxruntime and pillow only.

Downstream apps load `exported/<name>` (its `latest` version), a version folder `exported/<name>/v<N>`,
or a registry URI, `models:/<name>@<alias>`; the manifest says what the graphs expect, and its sizes
and hashes are checked before a session is created, so a truncated or swapped file is refused
(`components.model_folder`). The sessions are created once, when the runtime loads, and reused:
`session.run` is thread-safe, so an HTTP server shares one runtime across all its requests.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from components.model_folder import ModelFolderError, check_graphs_match, export_folder, read_manifest
from components.runtime_batches import MIN_SLICE_ELEMENTS, ParallelBatches, usable_cores
from components.runtime_io import Dim, InputError, as_batch, images_to_batch

__all__ = ["AutoencoderRuntime", "InputError", "ModelFolderError", "OnnxAutoencoder"]

REGISTRY_PREFIX = "models:/"
Labels = np.ndarray | list[int] | int | None


def session_options(intra_op_threads: int | None) -> ort.SessionOptions:
    """All graph optimisations on; intra-op threads as asked (onnxruntime's default: one per core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    return options


class AutoencoderRuntime:
    """The encoder, decoder and whole model of one export, driven by its manifest."""

    def __init__(
        self,
        folder: str | Path,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        batch_workers: int | None = None,
    ) -> None:
        """Batches run on the CPU's cores by default (`batch_workers` = the usable cores): small
        ones on the caller's thread, big ones in slices side by side, each on a single-threaded
        session; one image too big to slice uses onnxruntime's intra-op threads
        (components/runtime_batches.py says why, with the numbers). `batch_workers=1` or
        `intra_op_threads` hand every call to onnxruntime's own threading instead; so does an
        accelerator provider, which has its own parallelism."""
        # `latest` is resolved once: a concurrent export cannot make this runtime mix two versions.
        self.folder = export_folder(Path(folder))
        self.manifest = read_manifest(self.folder)
        self.requested_providers = list(providers or ["CPUExecutionProvider"])
        cpu_only = self.requested_providers == ["CPUExecutionProvider"]
        for name, value in (("batch_workers", batch_workers), ("intra_op_threads", intra_op_threads)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or left out for the default), got {value}")
        if batch_workers is None:
            batch_workers = usable_cores() if cpu_only and not intra_op_threads else 1
        self._batches = ParallelBatches(batch_workers)
        self._single_threaded = batch_workers > 1 and not intra_op_threads
        self._intra_op_threads = 1 if self._single_threaded else intra_op_threads
        # Work per row is counted in elements of the image a graph makes, not of a small code or a
        # low-resolution input: the manifest's shapes give the ratios, which hold at any size.
        image, output = math.prod(self.input_shape), math.prod(self.output_shape)
        self._work_ratio = {
            "encoder": 1.0,
            "model": output / image,
            "decoder": output / max(math.prod(self.latent_shape), 1),
        }
        roles = list(self.manifest["graphs"])
        self.sessions: dict[str, ort.InferenceSession] = {
            role: self._session(role, self._intra_op_threads) for role in roles
        }
        # Sessions on onnxruntime's own threads, for one image too big to slice. Made now, from the
        # files just checked, and only where one image can be that big (open sizes, large images).
        big_images = None in self.image_dims or max(image, output) >= 2 * MIN_SLICE_ELEMENTS
        self._threaded = (
            {role: self._session(role, None) for role in roles}
            if self._single_threaded and big_images
            else {}
        )
        check_graphs_match(self.folder, self.manifest, self.sessions)
        self.providers: list[str] = self.sessions["model"].get_providers()
        self.provider_note = self._fallback_note()
        if self.provider_note:
            warnings.warn(self.provider_note, RuntimeWarning, stacklevel=2)

    def _session(self, role: str, intra_op_threads: int | None) -> ort.InferenceSession:
        path = self.folder / self.manifest["graphs"][role]["file"]
        try:
            return ort.InferenceSession(
                str(path), session_options(intra_op_threads), providers=self.requested_providers
            )
        except Exception as err:  # onnxruntime's errors (InvalidGraph, Fail, …) derive from Exception only
            raise ModelFolderError(f"{path} cannot be loaded by onnxruntime: {err}") from None

    @classmethod
    def load(
        cls,
        source: str | Path,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        tracking_uri: str | None = None,
        batch_workers: int | None = None,
    ) -> AutoencoderRuntime:
        """`exported/<name>` (its latest version), `exported/<name>/v<N>`, or `models:/<name>@<alias>` /
        `models:/<name>/<version>`.

        Only the registry form touches MLflow (imported there and then), so apps that load
        folders never import it; it downloads the three graphs and the manifest into a cache.
        """
        text = str(source)
        if text.startswith(REGISTRY_PREFIX):
            from flows.registry import fetch_registered_export  # lazy: the only path that needs mlflow

            folder = fetch_registered_export(text, tracking_uri)
            return cls(folder, providers, intra_op_threads, batch_workers)
        return cls(Path(text), providers, intra_op_threads, batch_workers)

    def _fallback_note(self) -> str | None:
        """What onnxruntime really runs on when an accelerator was asked for and it quietly fell back."""
        asked = [p for p in self.requested_providers if p != "CPUExecutionProvider"]
        missing = [p for p in asked if p not in self.providers]
        if not missing:
            return None
        return (
            f"{', '.join(missing)} was asked for but onnxruntime runs this model on "
            f"{', '.join(self.providers)} "
            f"(available here: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu and the "
            "CUDA libraries, or ask for CPUExecutionProvider"
        )

    # --- what the manifest says ----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.manifest.get("model_kind", "ae"))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input"]["shape"])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.get("output", self.manifest["input"])["shape"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["latent"]["shape"])

    @property
    def value_range(self) -> tuple[float, float]:
        lo, hi = self.manifest["input"].get("range", [0.0, 1.0])
        return float(lo), float(hi)

    @property
    def generative(self) -> bool:
        return bool(self.manifest.get("generative"))

    @property
    def conditional(self) -> bool:
        return bool(self.manifest.get("conditional"))

    def _accepted(self, role: str, fixed: tuple[int, ...]) -> tuple[Dim, ...]:
        """The first input's shape without the batch axis; axes the graph leaves symbolic accept any size."""
        declared = self.manifest["graphs"][role]["inputs"][0]["shape"][1:]
        return tuple(None if isinstance(d, str) else f for d, f in zip(declared, fixed, strict=True))

    @functools.cached_property
    def image_dims(self) -> tuple[Dim, ...]:
        return self._accepted("model", self.input_shape)

    @functools.cached_property
    def code_dims(self) -> tuple[Dim, ...]:
        return self._accepted("decoder", self.latent_shape)

    # --- inference -----------------------------------------------------------------------------------
    def images(self, images: Any) -> np.ndarray:
        """The float32 batch the encoder takes, from arrays, PIL images or image paths."""
        return images_to_batch(images, self.image_dims, "images")

    def _labels(self, labels: Labels, n: int) -> dict[str, np.ndarray]:
        if not self.conditional:
            if labels is not None:
                raise InputError(f"model kind {self.kind!r} takes no class labels; leave labels out")
            return {}
        if labels is None:
            raise InputError("this model is conditional: pass one class label per image (or one for all)")
        try:
            array = np.asarray(labels)
        except (ValueError, TypeError):  # ragged nested lists
            array = np.asarray([], dtype=object)
        if array.ndim > 1 or array.dtype.kind not in "iu":
            raise InputError(f"labels: expected an integer or a flat list of integers, got {labels!r:.80}")
        array = array.reshape(-1)
        classes = int(self.manifest["num_classes"])
        integers = np.issubdtype(array.dtype, np.integer)
        if (
            not integers
            or len(array) not in (1, n)
            or array.min(initial=0) < 0
            or array.max(initial=0) >= classes
        ):
            shown = array.tolist()[:10]
            raise InputError(f"labels: expected 1 or {n} integers in [0, {classes}), got {shown}")
        return {"labels": np.broadcast_to(array.astype(np.int64), (n,)).copy()}

    def _run(self, role: str, first: str, batch: np.ndarray, labels: Labels) -> list[np.ndarray]:
        feeds = {first: batch, **self._labels(labels, len(batch))}
        per_row = batch[0].size * self._work_ratio[role] if len(batch) else 0
        return self._batches.run(self.sessions[role], feeds, int(per_row), self._threaded.get(role))

    def encode(self, images: Any, labels: Labels = None) -> np.ndarray:
        """The code of each image (a VAE's posterior mean)."""
        return self._run("encoder", "images", self.images(images), labels)[0]

    def posterior(self, images: Any, labels: Labels = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log_var) of a variational model's posterior; sample outside with exp(½·log_var)."""
        if not self.manifest.get("variational"):
            raise InputError(f"model kind {self.kind!r} is not variational: it has no posterior variance")
        mean, log_var = self._run("encoder", "images", self.images(images), labels)
        return mean, log_var

    def codes(self, codes: Any) -> np.ndarray:
        """A float32 batch of codes of the decoder's shape (no value range: codes are unbounded)."""
        return as_batch(codes, self.code_dims, "codes", value_range=None)

    def decode(self, codes: Any, labels: Labels = None) -> np.ndarray:
        """Images in [0, 1] for each code."""
        return self._run("decoder", "code", self.codes(codes), labels)[0]

    def reconstruct(self, images: Any, labels: Labels = None) -> np.ndarray:
        """The model's output: denoised (denoise), upscaled (superres) or reconstructed images."""
        return self._run("model", "images", self.images(images), labels)[0]

    def sample(self, n: int, seed: int = 0, labels: Labels = None) -> np.ndarray:
        """`n` images decoded from codes drawn from the N(0, I) prior (generative kinds only)."""
        if not self.generative:
            raise InputError(
                f"model kind {self.kind!r} has no prior to sample from; sampling needs a vae, cvae or aae"
            )
        if (
            isinstance(n, bool)
            or isinstance(seed, bool)
            or not isinstance(n, int | np.integer)
            or n < 1
            or seed < 0
        ):
            raise InputError(
                f"expected a positive number of samples n and a seed ≥ 0, got n={n}, seed={seed}"
            )
        codes = np.random.default_rng(seed).standard_normal((n, *self.latent_shape), dtype=np.float32)
        return self.decode(codes, labels)

    def interpolate(self, a: Any, b: Any, steps: int, labels: Labels = None) -> np.ndarray:
        """Decode `steps` evenly spaced codes from encode(a) to encode(b) per pair: (pairs, steps, C, H, W).

        Most meaningful for generative kinds, whose codes between two images are themselves likely;
        any kind accepts it, so a plain autoencoder's holes in its code space can be seen too.
        """
        if steps < 2:
            raise InputError(f"steps: an interpolation needs at least 2 steps, got {steps}")
        start, end = self.images(a), self.images(b)
        if start.shape != end.shape:
            raise InputError(f"a {start.shape} and b {end.shape} must pair up: give as many images of each")
        code_a, code_b = self.encode(start, labels), self.encode(end, labels)
        weights = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape(1, steps, *([1] * (code_a.ndim - 1)))
        path = code_a[:, None] + weights * (code_b - code_a)[:, None]
        pair_labels = None if labels is None else np.repeat(self._labels(labels, len(start))["labels"], steps)
        images = self.decode(path.reshape(-1, *code_a.shape[1:]), pair_labels)
        return images.reshape(len(start), steps, *images.shape[1:])


# The name of the first version of this class; README examples and older callers use it.
OnnxAutoencoder = AutoencoderRuntime
