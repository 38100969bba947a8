"""Classical baselines an autoencoder has to beat: PCA, k-nearest neighbours, filters, interpolation.

An autoencoder result means little without them: a linear code of the same size (PCA) for
reconstruction, kNN accuracy on the codes for how well they separate the classes, median and
Gaussian filters for denoising, and plain interpolation for super-resolution. All of them use
the field's standard implementations (scikit-learn, SciPy, torch), so the numbers are the ones
anyone else would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

DenoiseMethod = Literal["median", "gaussian"]

# The validation grid for `tuned_classical_denoise`: median window sizes and Gaussian sigmas (pixels).
DENOISE_GRID: tuple[tuple[DenoiseMethod, float], ...] = (
    ("median", 3),
    ("median", 5),
    ("gaussian", 0.5),
    ("gaussian", 1.0),
    ("gaussian", 1.5),
    ("gaussian", 2.0),
)


# --- PCA: the linear autoencoder ----------------------------------------------------------------
@dataclass(frozen=True)
class PcaResult:
    """PCA reconstructions of `inputs` (shaped like them, in [0, 1]) and the codes of both sets."""

    reconstruction: torch.Tensor
    train_codes: np.ndarray
    input_codes: np.ndarray


def _flat(images: torch.Tensor) -> np.ndarray:
    """(N, ...) tensor → (N, features) float64 array: PCA is fitted in double precision."""
    return images.detach().cpu().double().reshape(len(images), -1).numpy()


def pca_reconstruction(
    train: torch.Tensor, inputs: torch.Tensor, n_components: int, seed: int = 0
) -> PcaResult:
    """Fit PCA with `n_components` on the flattened training images; reconstruct `inputs` through it.

    PCA is the optimal linear autoencoder for squared error, so with `n_components` equal to an
    autoencoder's code size it is the baseline its reconstructions must beat. `seed` only matters
    when scikit-learn picks its randomised solver (large data, few components).
    """
    x_train, x_inputs = _flat(train), _flat(inputs)
    limit = min(x_train.shape)
    if not 1 <= n_components <= limit:
        raise ValueError(
            f"n_components={n_components} must be between 1 and min(n_samples, n_features) = "
            f"min{tuple(x_train.shape)} = {limit}"
        )
    if x_inputs.shape[1] != x_train.shape[1]:
        raise ValueError(f"inputs {tuple(inputs.shape)} do not match train images {tuple(train.shape)}")
    # Few features (28×28 = 784): the exact eigendecomposition of the covariance takes milliseconds
    # where scikit-learn's default randomised SVD took seconds; large images keep the default.
    solver = "covariance_eigh" if x_train.shape[1] <= 4096 else "auto"
    pca = PCA(n_components=n_components, random_state=seed, svd_solver=solver).fit(x_train)
    train_codes, input_codes = pca.transform(x_train), pca.transform(x_inputs)
    flat = torch.from_numpy(pca.inverse_transform(input_codes))
    reconstruction = flat.reshape(inputs.shape).to(inputs.dtype).to(inputs.device).clamp(0.0, 1.0)
    return PcaResult(reconstruction=reconstruction, train_codes=train_codes, input_codes=input_codes)


# --- kNN on codes: do the codes separate the classes? -------------------------------------------
def _as_array(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def knn_accuracy(
    train_codes: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_codes: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    k: int = 5,
) -> float:
    """Test accuracy of a k-nearest-neighbour classifier (Euclidean) fitted on the training codes.

    A label-free summary of how much class structure an unsupervised code keeps. Codes of any
    shape are flattened to (N, features). Datasets without labels mark them -1, so negative
    labels raise instead of producing a meaningless score.
    """
    x_train, x_test = _as_array(train_codes), _as_array(test_codes)
    y_train, y_test = _as_array(train_labels).reshape(-1), _as_array(test_labels).reshape(-1)
    if (y_train < 0).any() or (y_test < 0).any():
        raise ValueError("kNN accuracy needs labels; this data has none (negative labels)")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("each set of codes needs exactly one label per code")
    if not 1 <= k <= len(x_train):
        raise ValueError(f"k={k} must be between 1 and the number of training codes ({len(x_train)})")
    classifier = KNeighborsClassifier(n_neighbors=k).fit(x_train.reshape(len(x_train), -1), y_train)
    return float(classifier.score(x_test.reshape(len(x_test), -1), y_test))


# --- Denoising with classical filters -----------------------------------------------------------
def classical_denoise(noisy: torch.Tensor, method: DenoiseMethod, strength: float) -> torch.Tensor:
    """Filter each image and channel of (N, C, H, W) over its spatial axes only; result in [0, 1].

    `strength` is the window size for "median" (an odd integer) and sigma in pixels for "gaussian".
    Borders are mirrored (SciPy's "reflect"), so edges are not darkened.
    """
    if noisy.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(noisy.shape)}")
    array = noisy.detach().cpu().double().numpy()
    if method == "median":
        size = round(strength)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"median filter size must be a positive odd integer, got {strength}")
        filtered = ndimage.median_filter(array, size=(1, 1, size, size), mode="reflect")
    elif method == "gaussian":
        if strength <= 0:
            raise ValueError(f"gaussian sigma must be positive, got {strength}")
        filtered = ndimage.gaussian_filter(array, sigma=(0, 0, strength, strength), mode="reflect")
    else:
        raise ValueError(f"unknown denoising method {method!r}")
    return torch.from_numpy(filtered).to(noisy.dtype).to(noisy.device).clamp(0.0, 1.0)


def mean_psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over images of per-image PSNR (dB, data range 1), capped at 100 dB like the evaluation."""
    out_np = output.detach().cpu().double().clamp(0, 1).numpy()
    ref_np = target.detach().cpu().double().numpy()
    scores = [
        min(peak_signal_noise_ratio(r, o, data_range=1.0), 100.0) if np.any(o != r) else 100.0
        for o, r in zip(out_np, ref_np, strict=True)
    ]
    return float(np.mean(scores))


def tuned_classical_denoise(
    noisy_val: torch.Tensor, clean_val: torch.Tensor, noisy_test: torch.Tensor
) -> tuple[torch.Tensor, dict[str, str | float]]:
    """Pick the filter and strength with the best validation PSNR, then denoise the test inputs with it.

    The choice is made on validation only (never on test), so the baseline gets the same fair
    tuning a trained model gets from its validation split. Returns the denoised test images and
    {"method", "strength", "val_psnr"} for the chosen setting.
    """
    if noisy_val.shape != clean_val.shape:
        raise ValueError(
            f"noisy_val {tuple(noisy_val.shape)} differs from clean_val {tuple(clean_val.shape)}"
        )
    scored = [
        (mean_psnr(classical_denoise(noisy_val, method, strength), clean_val), method, strength)
        for method, strength in DENOISE_GRID
    ]
    best_psnr, method, strength = max(scored, key=lambda item: item[0])
    chosen: dict[str, str | float] = {"method": method, "strength": float(strength), "val_psnr": best_psnr}
    return classical_denoise(noisy_test, method, strength), chosen


# --- Super-resolution by interpolation ----------------------------------------------------------
def upsample(
    low: torch.Tensor, size: tuple[int, int], mode: Literal["bicubic", "bilinear", "nearest"]
) -> torch.Tensor:
    """Resize (N, C, h, w) images to `size` = (H, W) by plain interpolation; result in [0, 1].

    Bicubic overshoots near edges, hence the clamp.
    """
    align = None if mode == "nearest" else False
    return F.interpolate(low, size=size, mode=mode, align_corners=align).clamp(0.0, 1.0)
