"""Score an exported `model.onnx` on a fixed evaluation set, exactly as a freshly trained model is.

The champion/challenger decision needs both models scored on the same images with the same
metric code; running the incumbent's ONNX graph here (rather than trusting a number logged
by an older run on perhaps other data) is what makes the comparison fair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from components.evaluation import image_quality


class IncomparableModelError(ValueError):
    """The graph cannot be run on this evaluation set (other input shape, missing labels, ...)."""


def score_onnx_model(
    path: Path,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """MSE / PSNR / SSIM of the graph's outputs against `targets` (the keys of `image_quality`)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_inputs = {item.name: item for item in session.get_inputs()}
    if "images" not in graph_inputs:
        raise IncomparableModelError(f"{path} has no `images` input (inputs: {sorted(graph_inputs)})")
    expected = graph_inputs["images"].shape[1:]
    got = list(inputs.shape[1:])
    fixed_mismatch = any(isinstance(e, int) and e != g for e, g in zip(expected, got, strict=False))
    if fixed_mismatch or len(expected) != len(got):
        raise IncomparableModelError(f"{path} expects images of shape {expected}, the evaluation has {got}")
    needs_labels = "labels" in graph_inputs
    if needs_labels and labels is None:
        raise IncomparableModelError(f"{path} is conditional but the evaluation set has no labels")
    outputs = []
    array = inputs.numpy().astype(np.float32, copy=False)
    for start in range(0, len(array), batch_size):
        feeds = {"images": array[start : start + batch_size]}
        if needs_labels:
            assert labels is not None
            feeds["labels"] = labels[start : start + batch_size].numpy().astype(np.int64)
        outputs.append(session.run(None, feeds)[0])
    output = torch.from_numpy(np.concatenate(outputs))
    if output.shape != targets.shape:
        raise IncomparableModelError(
            f"{path} produces {tuple(output.shape)[1:]}, the targets are {tuple(targets.shape)[1:]}"
        )
    return image_quality(output, targets)
