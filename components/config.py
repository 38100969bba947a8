"""One typed config object that travels through the whole pipeline.

Every section is a small pydantic model, so a bad value fails at the door with a message
that names the field, and the exact config that trained a model can be stored next to it
(MLflow params, the export manifest) and rebuilt later.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DatasetName = Literal["mnist", "fashion-mnist", "kmnist", "cifar10", "digits", "folder"]
CorruptionKind = Literal["none", "gaussian", "salt-pepper", "mask", "downsample"]


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    name: DatasetName = "digits"
    root: Path = Path("data")
    download: bool = False
    image_size: int = Field(28, ge=16, le=1024, description="Side of the square images fed to the model.")
    channels: Literal[1, 3] | None = Field(
        None, description="Force grayscale (1) or RGB (3); default: the dataset's own."
    )
    fit: Literal["resize", "center-crop"] = Field(
        "resize", description="How folder images of other sizes are made square."
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(
        0.2, gt=0.0, lt=0.5, description="Used only by datasets without an official test split."
    )
    limit: int | None = Field(None, ge=10, description="Keep at most this many training images.")
    patches: int | None = Field(
        None,
        ge=1,
        description="Folder only: cut this many random image_size×image_size patches from every image "
        "(positions seeded by data.seed) instead of resizing it; images are split before cutting.",
    )
    seed: int = 0
    cache_dir: Path = Path(".cache/aeflow")

    @model_validator(mode="after")
    def _patches_need_folder(self) -> DataConfig:
        if self.patches is not None and self.name != "folder":
            raise ValueError(f"data.patches cuts patches from an image folder; data.name is {self.name!r}")
        return self

    def cache_key(self) -> str:
        """Hash of everything that changes the ingested arrays (not where the cache lives)."""
        fields = self.model_dump(mode="json", exclude={"cache_dir", "download"})
        fields["root"] = str(Path(self.root).expanduser().resolve())
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class CorruptionConfig(Section):
    kind: CorruptionKind = "none"
    mean: float = Field(0.5, description="Gaussian noise mean (the lesson uses 0.5).")
    std: float = Field(0.5, ge=0.0, description="Gaussian noise standard deviation.")
    clip: bool = Field(True, description="Clip noisy images back into [0, 1].")
    amount: float = Field(0.1, ge=0.0, le=1.0, description="Salt-and-pepper: fraction of pixels hit.")
    mask_fraction: float = Field(0.25, ge=0.0, le=1.0, description="Masking: fraction of patches zeroed.")
    mask_patch: int = Field(4, ge=1, description="Masking: side of each square patch in pixels.")
    factor: Literal[2, 4] = Field(2, description="Downsampling factor.")
    mode: Literal["area", "bilinear", "bicubic"] = "area"
    eval_seed: int = Field(1234, description="Seed of the fixed corruption of the evaluation sets.")


ModelKind = Literal["ae", "denoise", "superres", "vae", "cvae", "aae"]
NOISE_KINDS = ("gaussian", "salt-pepper", "mask")


class ModelConfig(Section):
    """Which autoencoder to build. Each kind pairs with a model file under components/models/."""

    kind: ModelKind = Field(
        "ae",
        description="ae: plain (sparse with `sparsity` > 0); denoise: trained corrupted → clean; "
        "superres: low-res → high-res; vae / cvae: (conditional) variational; aae: adversarial.",
    )
    architecture: Literal["conv", "fc", "fcn"] = Field(
        "conv",
        description="conv: the lesson's conv stack; fc: fully connected (the lesson's VAE); "
        "fcn: fully convolutional, any image size (photographs).",
    )
    channels: list[int] = Field(default_factory=lambda: [16, 8, 8], min_length=1, max_length=6)
    kernel_size: int = Field(3, ge=1, le=7)
    latent_dim: int | None = Field(
        None, ge=1, description="Dense bottleneck size; None keeps the conv feature map as the code."
    )
    hidden: list[int] = Field(
        default_factory=lambda: [512],
        min_length=1,
        description="Dense layer widths: the fc network; in a conv VAE, between conv features and code.",
    )
    upsample: Literal["nearest", "pixelshuffle"] = Field("nearest", description="Decoder upsampling.")
    residual: bool = Field(False, description="Predict a correction to the (upsampled) input (fcn).")
    sparsity: float = Field(0.0, ge=0.0, description="L1 activity penalty on the code (sparse ae).")
    beta: float = Field(1.0, ge=0.0, description="Weight of the KL term (vae, cvae).")
    num_classes: int = Field(10, ge=2, description="Label classes (cvae).")
    disc_hidden: int = Field(256, ge=8, description="Discriminator width (aae).")

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if any(c <= 0 for c in self.channels) or any(h <= 0 for h in self.hidden):
            raise ValueError(
                f"model.channels and model.hidden must be positive, got {self.channels}, {self.hidden}"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size must be odd to keep sizes, got {self.kernel_size}")
        if self.kind in ("vae", "cvae", "aae") and self.latent_dim is None:
            raise ValueError(f"model.kind={self.kind} needs model.latent_dim (e.g. 2 or 16)")
        if self.architecture == "fc" and self.latent_dim is None:
            raise ValueError("model.architecture=fc needs model.latent_dim")
        if self.architecture == "fcn" and self.kind not in ("ae", "denoise", "superres"):
            raise ValueError("model.architecture=fcn is for ae, denoise and superres")
        if self.architecture == "fcn" and self.latent_dim is not None:
            raise ValueError("model.architecture=fcn keeps a spatial code: leave model.latent_dim unset")
        return self


class TrainConfig(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    loss: Literal["bce", "mse"] = Field(
        "bce", description="Reconstruction likelihood: bce = Bernoulli, mse = Gaussian (squared error)."
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    mixed_precision: bool = Field(True, description="bf16 autocast; used on CUDA only.")
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads; default: one per physical core (torch's choice)."
    )
    channels_last: bool = Field(
        True,
        description="NHWC memory layout for the conv layers: oneDNN's fast path on CPU and tensor "
        "cores on CUDA (BENCHMARKS.md measures it).",
    )
    compile: bool = Field(
        False, description="torch.compile the training step (off: no gain measured on CPU)."
    )
    seed: int = 0
    checkpoint_dir: Path = Path(".cache/aeflow/checkpoints")
    resume: bool = Field(
        True,
        description="Continue from <checkpoint_dir>/<name>/last.pt when it was written for this config "
        "(a killed or retried run picks up where it stopped); false always trains from scratch.",
    )
    retries: int = Field(
        1, ge=0, le=5, description="Prefect retries of the train task; each retry resumes the checkpoint."
    )
    progress: bool = True
    strategy: Literal["single", "ddp"] = Field(
        "single",
        description="single: one process; ddp: DistributedDataParallel, one process per device, "
        "started by torchrun (docs/scaling.md). batch_size stays the global batch.",
    )
    processes: int = Field(2, ge=1, le=64, description="ddp: processes per node (one per GPU).")
    dist_backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="ddp: torch.distributed backend; auto = nccl on CUDA, gloo on CPU."
    )
    torchrun_args: list[str] = Field(
        default_factory=list,
        description="ddp: torchrun options used instead of --standalone, e.g. for several nodes "
        "['--nnodes=2', '--node-rank=0', '--rdzv-backend=c10d', '--rdzv-endpoint=host:29400'].",
    )

    @model_validator(mode="after")
    def _ddp_consistent(self) -> TrainConfig:
        if self.strategy != "ddp":
            return self
        if self.batch_size % self.processes:
            raise ValueError(
                f"train.batch_size={self.batch_size} is the global batch and must split evenly over "
                f"train.processes={self.processes}; pick a multiple of {self.processes}"
            )
        if self.compile:
            raise ValueError("train.compile is not supported with train.strategy=ddp; turn one off")
        if self.device == "mps":
            raise ValueError("train.strategy=ddp runs on cuda (nccl) or cpu (gloo), not mps")
        return self


class EvalConfig(Section):
    grid_images: int = Field(8, ge=1, le=32, description="Columns of the reconstruction grid.")
    knn_k: int = Field(5, ge=1, description="Neighbours for the k-NN accuracy of the codes.")
    iwae_k: int = Field(64, ge=1, description="Importance samples for the VAE's IWAE NLL bound.")
    baselines: bool = Field(True, description="Compute PCA / k-NN / classical-filter baselines.")
    photo_folder: Path | None = Field(
        None, description="Whole test photographs (e.g. Set12) scored at full size after training."
    )
    photo_sigmas: list[float] = Field(
        default_factory=lambda: [15.0, 25.0, 50.0], description="Noise σ (0–255) for photo_folder."
    )


class ExportConfig(Section):
    dir: Path = Path("exported")
    opset: int = Field(20, ge=18)
    exporter: Literal["torchscript", "dynamo"] = Field(
        "torchscript",
        description="torch.onnx's tracing exporter (~0.2 s a graph) or torch.export (dynamo, ~4 s a graph); "
        "both are checked against torch by the parity test.",
    )
    parity_atol: float = Field(1e-5, gt=0.0)
    parity_batches: list[int] = Field(default_factory=lambda: [1, 3, 8])
    keep: int | None = Field(
        None, ge=1, description="Keep only the newest this many version folders per model (default: all)."
    )


class RunConfig(Section):
    """The whole recipe of one pipeline run."""

    name: str = Field("autoencoder", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataConfig = Field(default_factory=DataConfig)
    corruption: CorruptionConfig = Field(default_factory=CorruptionConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        size, factor, kind = self.data.image_size, self.corruption.factor, self.model.kind
        if kind == "superres" and self.corruption.kind != "downsample":
            raise ValueError(
                "model.kind=superres trains on downsampled inputs: set corruption.kind=downsample"
            )
        if kind == "denoise" and self.corruption.kind not in NOISE_KINDS:
            raise ValueError(f"model.kind=denoise needs a noise corruption: corruption.kind in {NOISE_KINDS}")
        if self.train.strategy == "ddp" and kind == "aae":
            raise ValueError(
                "model.kind=aae takes three optimiser steps per batch, which DDP cannot synchronise; "
                "use train.strategy=single"
            )
        if self.corruption.kind == "downsample" and size % factor:
            raise ValueError(
                f"data.image_size={size} is not divisible by corruption.factor={factor}; "
                f"pick an image size that is a multiple of {factor}"
            )
        return self

    def flat(self) -> dict[str, str]:
        """Dotted key → string value, the shape MLflow params want."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, inner)
            else:
                out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)

        walk("", self.model_dump(mode="json"))
        return out
