"""Ingestion: any supported dataset becomes float tensors in [0, 1], shaped (N, C, H, W), split by seed.

The arrays are cached as one `.npz` per data config, so a rerun (or the next pipeline step)
reads a single file instead of decoding thousands of images again.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from components.config import DataConfig
from components.image_modes import SIXTEEN_BIT_MODES, to_mode

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}

# dataset name → (torchvision class name, folder under root, files torchvision looks for)
_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
TORCHVISION_DATASETS: dict[str, tuple[str, str, list[str]]] = {
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES),
    "kmnist": ("KMNIST", "KMNIST/raw", _MNIST_FILES),
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    ),
}


class DatasetError(RuntimeError):
    """The data cannot be ingested; the message says what was expected and what to do."""


@dataclass(frozen=True)
class ImageSplits:
    """Train/validation/test images (float32, [0, 1], N×C×H×W) and labels (-1 where unknown)."""

    train: torch.Tensor
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.shape[1:]
        return int(c), int(h), int(w)

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-write never leaves a cache file that looks complete."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for f in fields(self):
            value: torch.Tensor = getattr(self, f.name)
            is_image = value.dim() == 4
            arrays[f.name] = (value * 255).round().to(torch.uint8).numpy() if is_image else value.numpy()
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> ImageSplits:
        with np.load(path) as arrays:
            values = {}
            for f in fields(cls):
                array = arrays[f.name]
                tensor = torch.from_numpy(array.copy())
                values[f.name] = tensor.float() / 255 if array.ndim == 4 else tensor.long()
        return cls(**values)


@dataclass(frozen=True)
class IngestResult:
    path: Path
    splits: ImageSplits
    from_cache: bool


def cache_path(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir) / f"data-{cfg.name}-{cfg.cache_key()}.npz"


def ingest(cfg: DataConfig) -> IngestResult:
    """Load the configured dataset, or its cached arrays when this exact config was seen before."""
    path = cache_path(cfg)
    if path.is_file():
        return IngestResult(path, ImageSplits.load(path), from_cache=True)
    _load_fresh(cfg).save(path)
    # Hand back what the cache holds (images stored as 8-bit), so a first run and a rerun see the same data.
    return IngestResult(path, ImageSplits.load(path), from_cache=False)


def check_source(cfg: DataConfig) -> None:
    """Cheap pre-flight check that `ingest` will find its data; raises DatasetError if not."""
    if cache_path(cfg).is_file() or cfg.name == "digits":
        return
    if cfg.name in TORCHVISION_DATASETS:
        if not cfg.download and not _files_present(cfg):
            raise _missing_dataset_error(cfg, detail=None)
        return
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; set data.root to a folder of images")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*") if p.is_file()):
        raise _no_images_error(root)


def _missing_dataset_error(cfg: DataConfig, detail: str | None) -> DatasetError:
    _, folder, files = TORCHVISION_DATASETS[cfg.name]
    root = Path(cfg.root).expanduser()
    expected = "\n".join(f"  {root / folder / name}" for name in files)
    hint = (
        "set data.download=true to fetch it (needs internet access)"
        if not cfg.download
        else f"the download failed ({detail}); fetch the files by hand and place them there"
    )
    return DatasetError(
        f"dataset {cfg.name!r} was not found under {root}. Expected files:\n{expected}\n"
        f"data.download is {str(cfg.download).lower()}: {hint}; or point data.root at a folder "
        "that holds them (data.name=digits always works offline)."
    )


def _files_present(cfg: DataConfig) -> bool:
    _, folder, files = TORCHVISION_DATASETS[cfg.name]
    base = Path(cfg.root).expanduser() / folder
    return all((base / name).is_file() for name in files)


def _corrupt_dataset_error(cfg: DataConfig, err: Exception) -> DatasetError:
    """All the expected files are there but torchvision cannot read them: truncated or not that data set."""
    _, folder, _ = TORCHVISION_DATASETS[cfg.name]
    where = Path(cfg.root).expanduser() / folder
    reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return DatasetError(
        f"dataset {cfg.name!r}: the files in {where} are there but cannot be read ({reason}); they are "
        "truncated or not this data set. Delete them and fetch them again (data.download=true), or "
        "point data.root at a good copy."
    )


def _no_images_error(root: Path) -> DatasetError:
    return DatasetError(
        f"no images found in {root} (looked recursively for {', '.join(sorted(IMAGE_SUFFIXES))})"
    )


def _load_fresh(cfg: DataConfig) -> ImageSplits:
    if cfg.name in TORCHVISION_DATASETS:
        (train_x, train_y), (test_x, test_y) = _load_torchvision(cfg)
        train_x, train_y, val_x, val_y = _split_off(train_x, train_y, cfg.val_fraction, cfg.seed)
    elif cfg.name == "folder" and cfg.patches is not None:
        train_x, train_y, val_x, val_y, test_x, test_y = _folder_patches(cfg, cfg.patches)
    else:
        x, y = _load_digits(cfg) if cfg.name == "digits" else _load_folder(cfg)
        x, y, test_x, test_y = _split_off(x, y, cfg.test_fraction, cfg.seed)
        train_x, train_y, val_x, val_y = _split_off(x, y, cfg.val_fraction, cfg.seed + 1)
    if cfg.limit is not None:
        train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
    prepared = [_fit_images(t, cfg) for t in (train_x, val_x, test_x)]
    return ImageSplits(prepared[0], train_y, prepared[1], val_y, prepared[2], test_y)


def _split_off(
    x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle by seed and cut `fraction` off the end: (kept_x, kept_y, cut_x, cut_y)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_cut = round(len(x) * fraction)
    if len(x) - n_cut < 1 or (fraction > 0 and n_cut < 1):
        raise DatasetError(
            f"{len(x)} images are too few to split off a fraction of {fraction}; add images "
            "or change data.val_fraction / data.test_fraction"
        )
    keep, cut = order[: len(x) - n_cut], order[len(x) - n_cut :]
    return x[keep], y[keep], x[cut], y[cut]


def _fit_images(images: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Set channels and square size as configured; input float (N, C, H, W) in [0, 1]."""
    if cfg.channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)
    elif cfg.channels == 3 and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[-2:] != (cfg.image_size, cfg.image_size) and len(images):
        size = (cfg.image_size, cfg.image_size)
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(0, 1).contiguous()


def _load_torchvision(
    cfg: DataConfig,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    import torchvision.datasets as tv_datasets

    class_name, _, _ = TORCHVISION_DATASETS[cfg.name]
    dataset_cls = getattr(tv_datasets, class_name)
    root = Path(cfg.root).expanduser()
    out = []
    for train in (True, False):
        try:
            dataset = dataset_cls(str(root), train=train, download=cfg.download)
        except Exception as err:  # torchvision raises bare assertions and shape errors on bad files
            if _files_present(cfg):
                raise _corrupt_dataset_error(cfg, err) from None
            raise _missing_dataset_error(cfg, detail=str(err)) from None  # OSError: offline download
        data = torch.as_tensor(np.asarray(dataset.data))
        images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
        out.append((images.float() / 255, labels))
    return out[0], out[1]


def _load_digits(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8×8 digits (1,797 images, values 0–16): real handwriting, offline."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def _load_folder(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every png/jpg/bmp below data.root; a sub-folder name becomes the label when there are any."""
    from torchvision.transforms import v2 as transforms

    _, decoded, labels, channels = _decode_folder(cfg)
    size = cfg.image_size
    fit = (
        transforms.Resize((size, size), antialias=True)
        if cfg.fit == "resize"
        else transforms.Compose([transforms.Resize(size, antialias=True), transforms.CenterCrop(size)])
    )
    to_tensor = transforms.Compose([transforms.PILToTensor(), fit])
    images = (
        torch.stack([to_tensor(to_mode(img, "RGB" if channels == 3 else "L")) for img in decoded]).float()
        / 255
    )
    return images, labels


def _folder_patches(
    cfg: DataConfig, patches: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split whole images into train/val/test first, then cut `patches` random squares from each.

    Splitting before cutting keeps every patch of one photograph in the same split, so validation
    and test never see pixels the model trained on. Patches are never upscaled: an image smaller
    than data.image_size is an error. Positions come from one generator seeded by data.seed.
    """
    files, decoded, labels, channels = _decode_folder(cfg)
    size = cfg.image_size
    small = [f"  {path}: {img.width}×{img.height}" for path, img in zip(files, decoded, strict=True)
             if img.width < size or img.height < size]  # fmt: skip
    if small:
        shown = "\n".join(small[:10]) + (f"\n  ... and {len(small) - 10} more" if len(small) > 10 else "")
        raise DatasetError(
            f"{len(small)} images in {Path(cfg.root).expanduser()} are smaller than the "
            f"{size}×{size} patches of data.image_size (patches are never upscaled):\n{shown}\n"
            "Lower data.image_size or remove those images."
        )
    index = torch.arange(len(decoded))
    index, _, test_index, _ = _split_off(index, labels, cfg.test_fraction, cfg.seed)
    train_index, _, val_index, _ = _split_off(index, labels[index], cfg.val_fraction, cfg.seed + 1)
    generator = torch.Generator().manual_seed(cfg.seed)
    mode: Literal["L", "RGB"] = "RGB" if channels == 3 else "L"
    out: list[torch.Tensor] = []
    for part in (train_index, val_index, test_index):
        cut = []
        for i in part.tolist():
            image = torch.from_numpy(np.asarray(to_mode(decoded[i], mode), dtype=np.uint8).copy())
            image = image.unsqueeze(0) if image.dim() == 2 else image.permute(2, 0, 1)
            tops = torch.randint(0, image.shape[1] - size + 1, (patches,), generator=generator).tolist()
            lefts = torch.randint(0, image.shape[2] - size + 1, (patches,), generator=generator).tolist()
            cut += [image[:, t : t + size, x : x + size] for t, x in zip(tops, lefts, strict=True)]
        out.append(torch.stack(cut).float() / 255 if cut else torch.zeros((0, channels, size, size)))
        out.append(labels[part].repeat_interleave(patches))
    return out[0], out[1], out[2], out[3], out[4], out[5]


def _decode_folder(cfg: DataConfig) -> tuple[list[Path], list[Image.Image], torch.Tensor, int]:
    """Decode every image below data.root: (files, images, labels, channels); unreadable files are errors."""
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; set data.root to a folder of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise _no_images_error(root)
    decoded, broken = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                decoded.append(img.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            broken.append(f"  {path}: {err}")
    if broken:
        shown = "\n".join(broken[:10]) + (f"\n  ... and {len(broken) - 10} more" if len(broken) > 10 else "")
        raise DatasetError(
            f"{len(broken)} of {len(files)} image files in {root} cannot be read:\n{shown}\n"
            "Remove or replace them and run again."
        )
    channels = cfg.channels or (3 if any(_is_colour(img) for img in decoded) else 1)
    parents = sorted({p.parent for p in files})
    label_of = {parent: i for i, parent in enumerate(parents)} if parents != [root] else {}
    labels = torch.tensor([label_of.get(p.parent, -1) for p in files], dtype=torch.long)
    return files, decoded, labels, channels


def _is_colour(img: Image.Image) -> bool:
    return img.mode not in {"1", "L", "LA", "La", "F", *SIXTEEN_BIT_MODES}
