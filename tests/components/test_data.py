"""Ingestion: MNIST-layout files, image folders and the bundled digits become [0, 1] tensors, cached."""

from __future__ import annotations

import struct
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from components.config import DataConfig
from components.data import TORCHVISION_DATASETS, DatasetError, ImageSplits, check_source, ingest

N_TRAIN, N_TEST, SIDE = 60, 20, 28


def _write_idx(path: Path, data: np.ndarray, magic: int) -> None:
    """torchvision's raw MNIST layout: big-endian magic, big-endian uint32 dims, then uint8 data."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", dim) for dim in data.shape)
    path.write_bytes(header + data.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("mnist-root")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, size=(N_TRAIN, SIDE, SIDE), dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(N_TEST, SIDE, SIDE), dtype=np.uint8)
    # Every training label is unique, so an image can be traced back to what was written after shuffling.
    train_labels = np.arange(N_TRAIN, dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=N_TEST, dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train_images, 0x00000803)
    _write_idx(raw / "train-labels-idx1-ubyte", train_labels, 0x00000801)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_images, 0x00000803)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_labels, 0x00000801)
    return {
        "root": root,
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def test_mnist_files_are_ingested_exactly(mnist: dict, tmp_path: Path) -> None:
    cfg = DataConfig(name="mnist", root=mnist["root"], image_size=SIDE, val_fraction=0.25, cache_dir=tmp_path)
    result = ingest(cfg)
    splits = result.splits

    assert not result.from_cache
    assert result.path.is_file() and result.path.parent == tmp_path
    assert splits.test.shape == (N_TEST, 1, SIDE, SIDE)
    assert len(splits.val) == round(N_TRAIN * cfg.val_fraction)
    assert len(splits.train) + len(splits.val) == N_TRAIN
    assert splits.train.shape[1:] == splits.val.shape[1:] == (1, SIDE, SIDE)
    assert splits.image_shape == (1, SIDE, SIDE)
    for images in (splits.train, splits.val, splits.test):
        assert images.dtype == torch.float32
        assert images.min() >= 0.0 and images.max() <= 1.0

    # The official test split keeps its order; pixels round-trip as value / 255.
    expected_test = torch.from_numpy(mnist["test_images"]).float() / 255
    assert torch.allclose(splits.test[0, 0], expected_test[0], atol=1 / 255)
    assert torch.allclose(splits.test[:, 0], expected_test, atol=1 / 255)
    assert torch.equal(splits.test_labels, torch.from_numpy(mnist["test_labels"]).long())

    # Train + val together are exactly the written training set, each image still with its own label.
    labels = torch.cat([splits.train_labels, splits.val_labels])
    assert sorted(labels.tolist()) == mnist["train_labels"].tolist()
    written = torch.from_numpy(mnist["train_images"]).float() / 255
    for image, label in zip(torch.cat([splits.train, splits.val]), labels, strict=True):
        assert torch.allclose(image[0], written[label], atol=1 / 255)


def test_mnist_resized_and_forced_to_rgb(mnist: dict, tmp_path: Path) -> None:
    cfg = DataConfig(name="mnist", root=mnist["root"], image_size=16, channels=3, cache_dir=tmp_path)
    splits = ingest(cfg).splits
    assert splits.test.shape == (N_TEST, 3, 16, 16)
    # Grey repeated into three identical channels.
    assert torch.equal(splits.test[:, 0], splits.test[:, 1])
    assert torch.equal(splits.test[:, 1], splits.test[:, 2])
    assert splits.test.min() >= 0.0 and splits.test.max() <= 1.0


def test_missing_dataset_names_the_expected_files_and_the_download_setting(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    cfg = DataConfig(name="mnist", root=root, cache_dir=tmp_path / "cache")
    _, folder, files = TORCHVISION_DATASETS["mnist"]

    for attempt in (check_source, ingest):
        with pytest.raises(DatasetError) as info:
            attempt(cfg)
        message = str(info.value)
        for name in files:
            assert str(root / folder / name) in message
        assert "data.download" in message
        assert "false" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_partly_present_dataset_is_still_reported_missing(mnist: dict, tmp_path: Path) -> None:
    root = tmp_path / "partial"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(
        (mnist["root"] / "MNIST/raw/train-images-idx3-ubyte").read_bytes()
    )
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        check_source(DataConfig(name="mnist", root=root, cache_dir=tmp_path / "cache"))


# Folder datasets: three sub-folders, each with its own colour, so labels can be checked against pixels.
FOLDERS = {
    "a": ("L", 40, (20, 12)),  # grayscale, 20 wide × 12 high
    "b": ("RGB", (200, 10, 10), (16, 16)),  # red
    "b/nested": ("L", 120, (33, 33)),  # grayscale, odd size, one level deeper
}
PER_FOLDER = 4


def _write_folder_dataset(root: Path) -> None:
    for sub, (mode, colour, size) in FOLDERS.items():
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_FOLDER):
            Image.new(mode, size, colour).save(folder / f"img{i}.png")


def _all_images(splits: ImageSplits) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([splits.train, splits.val, splits.test])
    labels = torch.cat([splits.train_labels, splits.val_labels, splits.test_labels])
    return images, labels


def test_folder_dataset_mixed_modes_become_rgb_with_folder_labels(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_folder_dataset(root)
    splits = ingest(DataConfig(name="folder", root=root, image_size=16, cache_dir=tmp_path / "cache")).splits
    images, labels = _all_images(splits)

    assert images.shape == (PER_FOLDER * len(FOLDERS), 3, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert sorted(set(labels.tolist())) == list(range(len(FOLDERS)))
    assert torch.bincount(labels).tolist() == [PER_FOLDER] * len(FOLDERS)

    # Each label stands for one folder: all its images have that folder's colour (constant images).
    colours_seen: dict[int, tuple[float, ...]] = {}
    for image, label in zip(images, labels, strict=True):
        assert torch.allclose(image, image[:, :1, :1].expand_as(image), atol=1e-6), "a constant image"
        colour = tuple(round(v * 255) for v in image[:, 0, 0].tolist())
        assert colours_seen.setdefault(int(label), colour) == colour
    expected = set()
    for _mode, colour, _size in FOLDERS.values():
        expected.add(colour if isinstance(colour, tuple) else (colour,) * 3)
    assert set(colours_seen.values()) == expected
    assert len(set(colours_seen.values())) == len(FOLDERS)


def test_folder_dataset_forced_grayscale(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_folder_dataset(root)
    cfg = DataConfig(name="folder", root=root, image_size=16, channels=1, cache_dir=tmp_path / "cache")
    images, _ = _all_images(ingest(cfg).splits)
    assert images.shape == (PER_FOLDER * len(FOLDERS), 1, 16, 16)
    values = {round(float(v) * 255) for v in images[:, 0, 0, 0]}
    # PIL's documented luma for L mode: L = R·299/1000 + G·587/1000 + B·114/1000.
    red = 200 * 299 / 1000 + 10 * 587 / 1000 + 10 * 114 / 1000
    assert 40 in values and 120 in values
    assert any(abs(v - red) <= 1 for v in values)
    assert len(values) == 3


def test_folder_center_crop_keeps_the_middle(tmp_path: Path) -> None:
    root = tmp_path / "wide"
    root.mkdir()
    pixels = np.zeros((16, 32), dtype=np.uint8)
    pixels[:, 16:] = 255  # left half black, right half white
    for i in range(10):
        Image.fromarray(pixels, mode="L").save(root / f"{i}.png")
    cropped = ingest(
        DataConfig(name="folder", root=root, image_size=16, fit="center-crop", cache_dir=tmp_path / "c")
    ).splits.train[0, 0]
    # The middle 16 columns: 8 black then 8 white, unchanged because no resize is needed.
    assert torch.equal(cropped[:, :8], torch.zeros(16, 8))
    assert torch.equal(cropped[:, 8:], torch.ones(16, 8))
    # Unlabelled images (no sub-folders) get label -1.
    splits = ingest(
        DataConfig(name="folder", root=root, image_size=16, fit="center-crop", cache_dir=tmp_path / "c")
    ).splits
    assert set(torch.cat([splits.train_labels, splits.test_labels]).tolist()) == {-1}


def test_truncated_image_is_named(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_folder_dataset(root)
    broken = root / "a" / "img1.png"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as info:
        ingest(DataConfig(name="folder", root=root, image_size=16, cache_dir=tmp_path / "cache"))
    message = str(info.value)
    assert str(broken) in message
    assert str(root / "a" / "img0.png") not in message


def test_empty_or_missing_folder_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not an image")
    cfg = DataConfig(name="folder", root=empty, image_size=16, cache_dir=tmp_path / "cache")
    for attempt in (check_source, ingest):
        with pytest.raises(DatasetError, match="no images"):
            attempt(cfg)
    missing = DataConfig(name="folder", root=tmp_path / "missing", image_size=16, cache_dir=tmp_path / "c")
    for attempt in (check_source, ingest):
        with pytest.raises(DatasetError, match="does not exist"):
            attempt(missing)


def test_digits_shapes_and_range(tmp_path: Path) -> None:
    n_digits = len(load_digits().images)
    cfg = DataConfig(name="digits", image_size=16, cache_dir=tmp_path)
    check_source(cfg)  # always available offline
    splits = ingest(cfg).splits
    images, labels = _all_images(splits)

    assert images.shape == (n_digits, 1, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.9  # full ink is still (close to) white after resizing
    # The splits partition the data set: every label occurs exactly as often as in the original.
    assert torch.bincount(labels).tolist() == np.bincount(load_digits().target).tolist()
    assert len(splits.test) == round(n_digits * cfg.test_fraction)


def test_second_ingest_reads_the_cache_with_identical_tensors(tmp_path: Path) -> None:
    cfg = DataConfig(name="digits", image_size=16, limit=100, cache_dir=tmp_path / "cache")
    first = ingest(cfg)
    second = ingest(cfg)

    assert not first.from_cache
    assert second.from_cache
    assert second.path == first.path
    for f in fields(ImageSplits):
        a, b = getattr(first.splits, f.name), getattr(second.splits, f.name)
        assert a.dtype == b.dtype, f.name
        assert torch.equal(a, b), f.name
    # Written atomically: only the final .npz, no temporary files left behind.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.path.name]
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    # Another cache location is a fresh ingest of the same data.
    moved = ingest(cfg.model_copy(update={"cache_dir": tmp_path / "elsewhere"}))
    assert not moved.from_cache
    assert torch.equal(moved.splits.train, first.splits.train)


def test_limit_caps_only_the_training_split(tmp_path: Path) -> None:
    full = ingest(DataConfig(name="digits", image_size=16, cache_dir=tmp_path)).splits
    limited = ingest(DataConfig(name="digits", image_size=16, limit=50, cache_dir=tmp_path)).splits
    assert len(full.train) > 50
    assert limited.train.shape == (50, 1, 16, 16)
    assert len(limited.train_labels) == 50
    assert torch.equal(limited.val, full.val)
    assert torch.equal(limited.test, full.test)


def test_split_is_deterministic_by_seed(tmp_path: Path) -> None:
    def splits(seed: int, where: str) -> ImageSplits:
        return ingest(DataConfig(name="digits", image_size=16, seed=seed, cache_dir=tmp_path / where)).splits

    a, again, other = splits(0, "a"), splits(0, "b"), splits(1, "c")
    for f in fields(ImageSplits):
        assert torch.equal(getattr(a, f.name), getattr(again, f.name)), f.name
    assert a.test.shape == other.test.shape
    assert not torch.equal(a.test, other.test)
    assert not torch.equal(a.train_labels, other.train_labels)
