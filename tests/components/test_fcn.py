"""The fully convolutional autoencoder: any input size in, input × scale out, exported with dynamic H/W."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from components.config import DataConfig, ModelConfig, RunConfig
from components.data import DatasetError, ingest
from components.export import export_model
from components.models import build_model
from components.models.fcn import FullyConvAutoencoder


def _model(kind: str, scale: int, residual: bool, upsample: str = "pixelshuffle") -> FullyConvAutoencoder:
    cfg = ModelConfig(kind=kind, architecture="fcn", channels=[4, 6], residual=residual, upsample=upsample)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_model(cfg, (1, 16, 16), (1, 16 * scale, 16 * scale), "mse")
    assert isinstance(model, FullyConvAutoencoder)
    return model.eval()


@pytest.mark.parametrize(
    ("kind", "scale", "residual", "upsample"),
    [
        ("denoise", 1, True, "pixelshuffle"),
        ("denoise", 1, False, "nearest"),
        ("superres", 2, True, "pixelshuffle"),
        ("superres", 4, True, "nearest"),
        ("superres", 2, False, "pixelshuffle"),
    ],
)
@pytest.mark.parametrize("size", [(37, 45), (50, 51), (1, 3)])
def test_output_is_input_size_times_scale(
    kind: str, scale: int, residual: bool, upsample: str, size: tuple[int, int]
) -> None:
    model = _model(kind, scale, residual, upsample)
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1, size[0] * scale, size[1] * scale)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_residual_model_starts_near_its_base() -> None:
    """The small last layer makes an untrained residual model ≈ identity (bicubic for super-resolution)."""
    x = torch.rand(1, 1, 37, 45) * 0.5 + 0.25
    with torch.no_grad():
        out = _model("denoise", 1, True)(x)
    assert float((out - x).abs().mean()) < 0.05


def test_residual_loss_is_squared_error_of_base_plus_correction() -> None:
    model = _model("denoise", 1, True).train()
    x = torch.rand(3, 1, 16, 16)
    terms = model.losses(x, x)
    with torch.no_grad():
        raw = model.decoder(model.encoder(x))
    assert torch.allclose(terms["loss"], ((raw - x) ** 2).mean())
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def _export_config(tmp_path: Path, kind: str) -> RunConfig:
    corruption = (
        {"kind": "downsample", "factor": 2, "mode": "bicubic"}
        if kind == "superres"
        else {"kind": "gaussian", "mean": 0.0, "std": 0.1}
    )
    return RunConfig.model_validate(
        {
            "name": f"fcn-{kind}",
            "data": {"image_size": 16},
            "corruption": corruption,
            "model": {"kind": kind, "architecture": "fcn", "channels": [4, 6], "residual": True},
            "export": {"dir": str(tmp_path / "exported")},
        }
    )


def test_export_has_dynamic_height_and_width(tmp_path: Path) -> None:
    """Super-resolution exercises every op the denoiser has (pad, crop, unshuffle, skip) plus bicubic;
    one export is ~15 s, so the denoiser's graph is left to the trained-model check."""
    kind, scale = "superres", 2
    cfg = _export_config(tmp_path, kind)
    image_shape = (1, 16, 16)
    model = _model(kind, scale, True)
    result = export_model(model, cfg, image_shape)  # parity at 38×47, 40×51 and 45×61: odd sizes
    graphs = result.manifest["graphs"]
    assert graphs["model"]["inputs"][0]["shape"] == ["batch", 1, "height", "width"]
    assert graphs["decoder"]["inputs"][0]["shape"][2:] == ["height", "width"]
    assert max(result.manifest["parity_max_abs_diff"].values()) <= 1e-5

    # A size the parity check never used, neither a multiple of the stride nor square.
    x = torch.rand(2, 1, 29, 61)
    session = ort.InferenceSession(str(result.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (2, 1, 29 * scale, 61 * scale)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# --- data: patch mode of the folder loader ----------------------------------------------------------
def _photo_folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L").save(root / f"{i:02d}.png")
    return root


def _patch_config(root: Path, cache: Path, **extra: object) -> DataConfig:
    values: dict[str, object] = {
        "name": "folder", "root": root, "image_size": 16, "patches": 5, "channels": 1,
        "val_fraction": 0.1, "test_fraction": 0.1, "cache_dir": cache, **extra,
    }  # fmt: skip
    return DataConfig.model_validate(values)


def test_patch_mode_cuts_patches_per_image_deterministically(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path / "photos", [(30, 40), (20, 20), (64, 17), *[(24, 24)] * 7])
    cfg = _patch_config(root, tmp_path / "cache")
    splits = ingest(cfg).splits
    # 10 images: 1 test, 1 val, 8 train, 5 patches each, never resized
    assert splits.train.shape == (8 * 5, 1, 16, 16)
    assert splits.val.shape == (5, 1, 16, 16) and splits.test.shape == (5, 1, 16, 16)
    again = ingest(_patch_config(root, tmp_path / "cache-again")).splits
    assert torch.equal(again.train, splits.train) and torch.equal(again.test, splits.test)
    other = ingest(_patch_config(root, tmp_path / "cache-other", seed=1)).splits
    assert not torch.equal(other.train, splits.train)
    # Every patch is a pixel-exact crop of one of the images (no interpolation).
    image = torch.from_numpy(np.asarray(Image.open(root / "00.png"), dtype=np.float32) / 255)
    windows = image.unfold(0, 16, 1).unfold(1, 16, 1).reshape(-1, 16, 16)
    everything = torch.cat([splits.train, splits.val, splits.test])[:, 0]
    hits = sum(bool((windows - patch).abs().amax(dim=(1, 2)).min() < 1e-6) for patch in everything)
    assert hits == 5


def test_patch_mode_rejects_images_smaller_than_the_patch(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path / "photos", [(30, 40), (15, 40), *[(24, 24)] * 8])
    with pytest.raises(DatasetError, match=r"(?s)smaller than the 16×16 patches.*01\.png: 40×15"):
        ingest(_patch_config(root, tmp_path / "cache"))


def test_patches_need_the_folder_dataset() -> None:
    with pytest.raises(ValueError, match=r"data\.patches"):
        DataConfig(name="digits", patches=4)


def test_photo_presets_build_fcn_models(make_config: Callable[..., RunConfig]) -> None:
    for preset, scale in (("photo-denoise", 1), ("photo-superres-x2", 2)):
        cfg = make_config(preset=preset)
        assert cfg.data.patches and cfg.model.architecture == "fcn"
        side = cfg.data.image_size
        model = build_model(cfg.model, (1, side // scale, side // scale), (1, side, side), cfg.train.loss)
        with torch.no_grad():
            assert model(torch.rand(1, 1, 33, 35)).shape == (1, 1, 33 * scale, 35 * scale)
