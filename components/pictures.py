"""The set of pictures a run produces, chosen by what the model kind can show.

Every kind: reconstructions (original / corrupted / output) and interpolation strips between
test images. 2-D codes: the test codes scattered by label and the decoded 10×10 traversal of
the latent plane (the lesson's two VAE figures). Generative kinds: samples from the prior and
codes perturbed with noise (the lesson's Task 2); a conditional VAE draws one row per class.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from components.config import RunConfig
from components.data import ImageSplits
from components.evaluation import Evaluation, encode_all
from components.figures import image_grid, interpolation_strips, latent_scatter, reconstruction_grid
from components.generation import decode_traversal, interpolate, perturb, sample_prior
from components.models import Autoencoder

SCATTER_POINTS = 2000


def kind_pictures(
    model: Autoencoder, splits: ImageSplits, cfg: RunConfig, evaluation: Evaluation, out_dir: Path
) -> list[Path]:
    """Write the PNGs for this model into `out_dir`; returns their paths."""
    model = model.cpu().eval()
    labels = splits.test_labels if model.conditional else None
    generator = torch.Generator().manual_seed(cfg.train.seed)
    paths = [
        reconstruction_grid(
            [
                ("original", evaluation.clean),
                ("corrupted", evaluation.corrupted),
                ("output", evaluation.output),
            ],
            out_dir / "reconstructions.png",
            columns=cfg.eval.grid_images,
            title=f"{cfg.name}: test PSNR {evaluation.metrics['test_psnr']:.2f} dB",
        )
    ]
    inputs = evaluation.corrupted
    if len(inputs) >= 8:
        pair_labels = None if labels is None else labels[:4]
        strips = interpolate(model, inputs[:4], inputs[4:8], steps=10, labels=pair_labels)
        paths.append(interpolation_strips(strips, out_dir / "interpolation.png", title="interpolating codes"))
    if math.prod(model.latent_shape) == 2:
        codes = encode_all(
            model, inputs[:SCATTER_POINTS], None if labels is None else labels[:SCATTER_POINTS]
        )
        paths.append(
            latent_scatter(
                codes.reshape(len(codes), 2),
                splits.test_labels[:SCATTER_POINTS],
                out_dir / "latent_scatter.png",
                title=f"{cfg.name}: test codes",
            )
        )
        if tuple(model.latent_shape) == (2,):
            traversal_labels = torch.full((100,), 8) if model.conditional else None
            grid = decode_traversal(model, steps=10, span=2.0, labels=traversal_labels)
            title = "decoded latent plane" + (" (label 8)" if model.conditional else "")
            paths.append(image_grid(grid, out_dir / "latent_traversal.png", rows=10, title=title))
    if model.generative:
        if model.conditional:
            classes = int(getattr(model, "num_classes", 10))
            wanted = torch.arange(classes).repeat_interleave(10)
            samples = sample_prior(model, len(wanted), generator, wanted)
            paths.append(
                image_grid(samples, out_dir / "samples.png", rows=classes, title="one row per label")
            )
        else:
            samples = sample_prior(model, 64, generator)
            paths.append(image_grid(samples, out_dir / "samples.png", rows=8, title="samples from the prior"))
        near = perturb(
            model,
            inputs[:6],
            std=0.5,
            n=8,
            generator=generator,
            labels=None if labels is None else labels[:6],
        )
        paths.append(interpolation_strips(near, out_dir / "perturbed.png", title="codes + N(0, 0.5²) noise"))
    return paths
