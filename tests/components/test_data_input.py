"""Ingestion of messy input: every image mode a folder can hold is converted, every unreadable file is named.

Each case writes real files and runs the real `ingest`; an error must name the file (or folder), say
what to do, and leave no cache file behind that a rerun would mistake for good data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.serve_http import png_declaring
from components.config import DataConfig
from components.data import TORCHVISION_DATASETS, DatasetError, ImageSplits, ingest


def _all_images(splits: ImageSplits) -> torch.Tensor:
    return torch.cat([splits.train, splits.val, splits.test])


def _pixel_values(images: torch.Tensor) -> set[tuple[int, ...]]:
    """The distinct (R, G, B) colours of constant images, as 0..255 integers."""
    return {tuple(round(v * 255) for v in image[:, 0, 0].tolist()) for image in images}


# One folder mixing every mode a hand-collected dataset holds, each file a constant colour at its own
# size, with the 8-bit RGB colour the model must see. Transparent pixels are composited onto black.
def _palette_with_transparency(size: tuple[int, int]) -> Image.Image:
    image = Image.new("P", size, 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.info["transparency"] = 1  # index 1 (green) is fully transparent
    return image


MODES: dict[str, tuple[Callable[[], Image.Image], tuple[int, int, int]]] = {
    "grey.png": (lambda: Image.new("L", (20, 12), 90), (90, 90, 90)),
    "red.jpg": (lambda: Image.new("RGB", (30, 30), (250, 0, 0)), (250, 0, 0)),
    "bilevel.png": (lambda: Image.new("1", (16, 16), 1), (255, 255, 255)),
    "palette.png": (lambda: Image.new("P", (17, 17), 0), (0, 0, 0)),
    "palette-transparent.png": (lambda: _palette_with_transparency((16, 16)), (0, 0, 0)),
    "rgba-opaque.png": (lambda: Image.new("RGBA", (40, 24), (0, 0, 240, 255)), (0, 0, 240)),
    "rgba-clear.png": (lambda: Image.new("RGBA", (16, 16), (255, 255, 255, 0)), (0, 0, 0)),
    "rgba-half.png": (lambda: Image.new("RGBA", (16, 16), (200, 100, 0, 128)), (100, 50, 0)),
    "grey-alpha.png": (lambda: Image.new("LA", (16, 20), (180, 255)), (180, 180, 180)),
    "sixteen-bit.png": (
        lambda: Image.fromarray(np.full((16, 16), 257 * 120, dtype=np.uint16)),
        (120, 120, 120),
    ),
    "cmyk.jpg": (lambda: Image.new("CMYK", (16, 16), (0, 255, 255, 0)), (255, 0, 0)),
    "bitmap.bmp": (lambda: Image.new("RGB", (9, 33), (0, 128, 0)), (0, 128, 0)),
}


def test_every_image_mode_and_size_in_one_folder_becomes_8_bit_rgb(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    for name, (make, _) in MODES.items():
        image = make()
        image.save(root / name, **({"quality": 100, "subsampling": 0} if name.endswith(".jpg") else {}))
    assert Image.open(root / "sixteen-bit.png").mode.startswith("I;16")  # really 16 bits on disk
    cfg = DataConfig(name="folder", root=root, image_size=16, test_fraction=0.1, val_fraction=0.1,
                     cache_dir=tmp_path / "cache")  # fmt: skip
    images = _all_images(ingest(cfg).splits)
    assert images.shape == (len(MODES), 3, 16, 16)
    assert torch.allclose(images, images[:, :, :1, :1].expand_as(images), atol=1 / 255)
    seen = _pixel_values(images)
    for name, (_, colour) in MODES.items():
        # JPEG is lossy and a half-transparent pixel rounds either way: within 3 levels.
        assert any(max(abs(a - b) for a, b in zip(colour, s, strict=True)) <= 3 for s in seen), (name, seen)


def test_sixteen_bit_grayscale_keeps_its_gradient(tmp_path: Path) -> None:
    """A 16-bit scan must not turn white (Pillow's plain convert clips at 255)."""
    root = tmp_path / "scans"
    root.mkdir()
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    for i in range(10):
        Image.fromarray(ramp).save(root / f"scan{i}.png")
    cfg = DataConfig(name="folder", root=root, image_size=16, cache_dir=tmp_path / "cache")
    image = ingest(cfg).splits.train[0, 0]
    assert image.shape == (16, 16)  # grayscale stays one channel
    row = image[8]
    assert row[0] < 0.02 and row[-1] > 0.98 and bool((row[1:] >= row[:-1]).all())
    assert 0.4 < float(row[7]) < 0.6


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN: dict[str, Callable[[Path], None]] = {
    "truncated": _truncated,
    "zero bytes": lambda path: path.write_bytes(b""),
    "not an image": lambda path: path.write_text("just some text saved as .png"),
    "image bomb": lambda path: path.write_bytes(png_declaring(30_000, 30_000)),
}


@pytest.mark.parametrize("damage", list(BROKEN), ids=list(BROKEN))
def test_an_unreadable_file_is_named_and_nothing_is_cached(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "images"
    root.mkdir()
    for i in range(12):
        Image.new("L", (16, 16), 10 * i).save(root / f"img{i:02d}.png")
    broken = root / "img05.png"
    BROKEN[damage](broken)
    cfg = DataConfig(name="folder", root=root, image_size=16, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError) as info:
        ingest(cfg)
    message = str(info.value)
    assert f"{broken}:" in message and "1 of 12 image files" in message, message
    assert str(root / "img04.png") not in message
    assert "Remove or replace" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def _write_idx(path: Path, data: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", dim) for dim in data.shape)
    path.write_bytes(header + data.astype(np.uint8).tobytes())


def _mnist_files(root: Path) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    labels = np.zeros(20, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 0x803)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 0x801)
    return raw


@pytest.mark.parametrize("damage", ["random bytes", "truncated"])
def test_corrupt_mnist_files_are_one_clear_error(tmp_path: Path, damage: str) -> None:
    raw = _mnist_files(tmp_path / "mnist")
    target = raw / "train-images-idx3-ubyte"
    if damage == "random bytes":
        target.write_bytes(np.random.default_rng(0).bytes(300))
    else:
        _truncated(target)
    cfg = DataConfig(name="mnist", root=tmp_path / "mnist", cache_dir=tmp_path / "cache")
    assert set(TORCHVISION_DATASETS["mnist"][2]) == {p.name for p in raw.iterdir()}
    with pytest.raises(DatasetError) as info:
        ingest(cfg)
    message = str(info.value)
    assert str(raw) in message and "cannot be read" in message and "data.download=true" in message
    assert not (tmp_path / "cache").exists()
