"""What every model kind shares, so training, evaluation and export treat them alike.

A model owns its encoder and decoder submodules, its loss, its optimisers and one training
step (most kinds take the default single-optimiser step; the adversarial autoencoder needs
three). It also describes the ONNX graphs it exports, so the exporter needs no per-kind code.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

InputSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: the module to trace, example inputs, names, dynamic axes, parity inputs.

    `sample(batch, generator)` returns inputs for the parity check at a given batch size (for
    fully convolutional models also at image sizes that are not multiples of the stride).
    """

    filename: str
    module: nn.Module
    example: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: tuple[dict[int, str], ...]
    sample: InputSampler


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image reconstruction loss summed over pixels: Bernoulli (BCE) or Gaussian (squared error).

    Computed in float32 from logits, so it is stable and safe to call after bf16 autocast.
    """
    logits = logits.float()
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - target) ** 2
    return per_pixel.flatten(1).sum(dim=1)


class Autoencoder(nn.Module):
    """Base class: `encode` → code, `decode` → images in [0, 1], `losses` → named loss terms."""

    conditional: ClassVar[bool] = False  # takes class labels (cvae)
    generative: ClassVar[bool] = False  # has a prior to sample codes from (vae, cvae, aae)
    variational: ClassVar[bool] = False  # encoder returns (mean, log_var)

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, loss: str) -> None:
        super().__init__()
        self.loss_kind = loss

    # --- inference -------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic code (a VAE's posterior mean)."""
        return self.encoder(images)

    def decode_logits(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(code)

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(code, labels))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(images, labels), labels)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    # --- training --------------------------------------------------------------------------------
    def losses(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Named loss terms, each a batch mean; "loss" is what the optimiser minimises."""
        raise NotImplementedError

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(
        self,
        inputs: torch.Tensor,
        target: torch.Tensor,
        labels: torch.Tensor | None,
        optimizers: list[torch.optim.Optimizer],
        autocast: Callable[[], AbstractContextManager[object]],
    ) -> dict[str, torch.Tensor]:
        (optimizer,) = optimizers
        with autocast():
            terms = self.losses(inputs, target, labels)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return {name: value.detach() for name, value in terms.items()}

    # --- export ----------------------------------------------------------------------------------
    def graphs(self, example_inputs: torch.Tensor) -> list[GraphSpec]:
        """Encoder, decoder and full model as separate graphs; conditional kinds add a labels input."""
        num_classes = int(getattr(self, "num_classes", 0)) if self.conditional else 0
        batch = example_inputs.shape[0]
        labels = (torch.arange(batch) % num_classes,) if num_classes else ()
        with torch.no_grad():
            code = self.encode(example_inputs, *labels)
        input_shape, code_shape = tuple(example_inputs.shape[1:]), tuple(code.shape[1:])
        lo, hi = float(code.min()), float(code.max())

        def sample_labels(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (torch.randint(0, num_classes, (n,), generator=g),) if num_classes else ()

        def images(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (torch.rand((n, *input_shape), generator=g), *sample_labels(n, g))

        def codes(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (lo + (hi - lo) * torch.rand((n, *code_shape), generator=g), *sample_labels(n, g))

        label_name = ("labels",) if num_classes else ()
        axes: tuple[dict[int, str], ...] = ({0: "batch"},) * (1 + len(labels))
        encoder_outputs = ("mean", "log_var") if self.variational else ("code",)
        return [
            GraphSpec("encoder.onnx", _Encode(self), (example_inputs, *labels), ("images", *label_name),
                      encoder_outputs, axes, images),
            GraphSpec("decoder.onnx", _Decode(self), (code, *labels), ("code", *label_name), ("images",),
                      axes, codes),
            GraphSpec("model.onnx", _Reconstruct(self), (example_inputs, *labels), ("images", *label_name),
                      ("reconstruction",), axes, images),
        ]  # fmt: skip


class _Encode(nn.Module):
    """The raw encoder output: the code, or (mean, log_var) for variational kinds."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        encoder = self.model.encoder
        out: torch.Tensor | tuple[torch.Tensor, ...] = (
            encoder(images, labels) if self.model.conditional else encoder(images)
        )
        return out


class _Decode(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(code, labels)


class _Reconstruct(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(images, labels)
