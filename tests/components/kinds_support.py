"""Shared setup of the per-kind tests: tiny configs of every kind, and lazily trained models.

The trained models are a session fixture (tests/components/conftest.py), so test_kinds.py and
test_kinds_generative.py share one training per kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from components.config import RunConfig
from components.corruption import corrupt_fixed
from components.data import ImageSplits
from components.evaluation import Evaluation, evaluate
from components.export import ExportResult, export_model
from components.models import Autoencoder
from components.presets import load_config
from components.training import TrainResult

BASE = (
    "data.name=digits",
    "data.image_size=16",
    "data.limit=300",
    "model.channels=[8, 8]",
    "train.epochs=3",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.device=cpu",
    "train.loss=bce",
    "train.num_threads=1",
    "eval.iwae_k=32",
)
FC = ("model.architecture=fc", "model.hidden=[64]", "model.latent_dim=2")
KINDS: dict[str, tuple[str, ...]] = {
    "ae": ("model.kind=ae",),  # the lesson's spatial 8×4×4 code
    "sparse-ae": ("model.kind=ae", "model.latent_dim=8", "model.sparsity=0.01"),
    "denoise": (
        "model.kind=denoise",
        "corruption.kind=gaussian",
        "corruption.mean=0.0",
        "corruption.std=0.2",
    ),
    "superres-x2": (
        "model.kind=superres",
        "corruption.kind=downsample",
        "corruption.factor=2",
        "model.upsample=pixelshuffle",
    ),
    "superres-x4": (
        "model.kind=superres",
        "corruption.kind=downsample",
        "corruption.factor=4",
        "model.upsample=nearest",
    ),
    "vae-fc": ("model.kind=vae", *FC),
    "vae-conv": ("model.kind=vae", "model.latent_dim=2"),
    "cvae": ("model.kind=cvae", *FC),
    "aae": ("model.kind=aae", *FC, "model.disc_hidden=32"),
}
VARIATIONAL = ("vae-fc", "vae-conv", "cvae")
GENERATIVE = (*VARIATIONAL, "aae")
ATOL = 1e-5


def kind_config(root: Path, kind: str, *extra: str) -> RunConfig:
    """The config of one kind with its cache, checkpoints and exports under `root`."""
    return load_config(
        overrides=[
            *BASE,
            *KINDS[kind],
            f"name=kinds-{kind}",
            "train.progress=false",
            f"data.cache_dir={root / 'cache'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"export.dir={root / 'exported'}",
            *extra,
        ]
    )


def no_autocast() -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclass
class KindRun:
    kind: str
    cfg: RunConfig
    splits: ImageSplits
    result: TrainResult
    _evaluation: Evaluation | None = field(default=None, repr=False)
    _export: ExportResult | None = field(default=None, repr=False)

    @property
    def model(self) -> Autoencoder:
        return self.result.model

    def inputs(self, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`n` fixed, corrupted test inputs and their labels (labels only for conditional models)."""
        clean = self.splits.test[offset : offset + n]
        labels = self.splits.test_labels[offset : offset + n] if self.model.conditional else None
        return corrupt_fixed(clean, self.cfg.corruption), labels

    @property
    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            self._evaluation = evaluate(self.model, self.splits, self.cfg)
        return self._evaluation

    @property
    def export(self) -> ExportResult:
        if self._export is None:
            self._export = export_model(self.model, self.cfg, self.splits.image_shape)
        return self._export


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread and one BLAS thread: on two shared cores, OpenBLAS's spinning threads turn a
    300×256 SVD (the PCA baseline) from milliseconds into seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
