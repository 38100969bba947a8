"""The inference baseline: the trained weights in the lesson notebook's own layer order.

ReLU before pooling and each upsample as its own op is what exporting the notebook's network
gives, and a default onnxruntime session on that graph is what the issue measures against.
aeflow's exported graph computes the same function but pools before the ReLU and folds each
×2 upsample into the conv after it (components/models/blocks.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.models import Autoencoder
from components.models.blocks import ConvStack, ConvUpStack


class LessonGraph(nn.Module):
    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        stack, *dense_in = list(model.encoder)
        *dense_out, up_stack = list(model.decoder)
        if not isinstance(stack, ConvStack) or not isinstance(up_stack, ConvUpStack):
            raise ValueError("the lesson graph needs the conv architecture")
        layers: list[nn.Module] = []
        body = list(stack.layers)
        for start in range(0, len(body), 3):
            conv, pool, relu = body[start : start + 3]
            layers += [conv, relu, pool]
        self.net = nn.Sequential(*layers, *dense_in, *dense_out, *up_stack.layers, nn.Sigmoid())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(images)
        return out


def export_lesson_graph(model: Autoencoder, image_shape: tuple[int, ...], path: Path) -> Path:
    """Write the lesson-order graph of `model` to `path`, after checking it computes the same."""
    lesson = LessonGraph(model).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((4, *image_shape), dtype=np.float32))
    with torch.no_grad():
        gap = float((lesson(x) - model(x)).abs().max())
    if gap > 1e-5:
        raise AssertionError(f"the lesson-order graph differs from the model by {gap}")
    torch.onnx.export(
        lesson,
        (x,),
        str(path),
        input_names=["images"],
        output_names=["reconstruction"],
        dynamic_axes={"images": {0: "batch"}, "reconstruction": {0: "batch"}},
        dynamo=False,
    )
    return path
