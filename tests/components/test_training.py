"""Training on the bundled digits: the loss falls, callbacks and checkpoints work, seeds decide weights."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import torch
import torch.nn.functional as F

from components.config import RunConfig
from components.corruption import corrupt_fixed
from components.data import ImageSplits
from components.models.base import reconstruction_loss
from components.training import (
    TrainingDivergedError,
    fit,
    load_trained,
    select_device,
)

if TYPE_CHECKING:
    from conftest import Trained


def test_validation_loss_falls(trained: Trained) -> None:
    history = trained.result.history
    assert len(history) == trained.cfg.train.epochs
    assert history[-1].val_loss < 0.9 * history[0].val_loss  # clearly lower, not noise
    assert history[-1].train_loss < history[0].train_loss
    for report in history:
        assert report.seconds > 0 and report.images_per_second > 0


def test_on_epoch_is_called_once_per_epoch_in_order(trained: Trained) -> None:
    epochs = trained.cfg.train.epochs
    assert epochs > 1
    assert [r.epoch for r in trained.reports] == list(range(1, epochs + 1))
    assert all(r.epochs == epochs for r in trained.reports)
    assert trained.reports == trained.result.history


def test_model_comes_back_on_cpu_in_eval_mode(trained: Trained) -> None:
    model = trained.result.model
    assert not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert trained.result.device == "cpu"
    assert trained.result.seconds > 0


def test_checkpoint_reloads_to_identical_outputs(trained: Trained) -> None:
    checkpoint = trained.result.checkpoint
    assert checkpoint.is_file()
    assert checkpoint.is_relative_to(trained.cfg.train.checkpoint_dir)
    assert not list(checkpoint.parent.glob("*.tmp"))

    reloaded = load_trained(trained.cfg, trained.splits.image_shape, checkpoint)
    inputs = corrupt_fixed(trained.splits.test, trained.cfg.corruption)
    with torch.no_grad():
        assert torch.equal(reloaded(inputs), trained.result.model(inputs))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["epoch"] == trained.cfg.train.epochs
    assert RunConfig.model_validate(state["config"]) == trained.cfg


def _short_run(
    make_config: Callable[..., RunConfig],
    overrides: tuple[str, ...],
    splits: ImageSplits,
    seed: int,
    where: str,
) -> torch.Tensor:
    cfg = make_config(*overrides, "train.epochs=2", f"train.seed={seed}", f"name={where}")
    model = fit(cfg, splits).model
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()


def test_same_seed_same_weights_other_seed_different(
    make_config: Callable[..., RunConfig], tiny_overrides: tuple[str, ...], digits_splits: ImageSplits
) -> None:
    first = _short_run(make_config, tiny_overrides, digits_splits, seed=0, where="first")
    again = _short_run(make_config, tiny_overrides, digits_splits, seed=0, where="again")
    other = _short_run(make_config, tiny_overrides, digits_splits, seed=1, where="other")
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_nan_in_the_data_stops_training_naming_epoch_and_batch(
    make_config: Callable[..., RunConfig], tiny_overrides: tuple[str, ...], digits_splits: ImageSplits
) -> None:
    train = digits_splits.train.clone()
    train[17, 0, 3, 3] = float("nan")
    poisoned = dataclasses.replace(digits_splits, train=train)
    cfg = make_config(*tiny_overrides, "train.epochs=3")
    n_batches = -(-len(train) // cfg.train.batch_size)
    with pytest.raises(TrainingDivergedError) as info:
        fit(cfg, poisoned)
    match = re.search(r"epoch (\d+), batch (\d+) of (\d+)", str(info.value))
    assert match, str(info.value)
    epoch, batch, total = map(int, match.groups())
    assert epoch == 1  # the NaN image is in every epoch, so the very first epoch fails
    assert 1 <= batch <= total == n_batches
    assert "nan" in str(info.value).lower()


def test_reconstruction_loss_matches_its_definitions() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((4, 1, 8, 8), generator=generator) * 3
    target = torch.rand((4, 1, 8, 8), generator=generator)
    probs = torch.sigmoid(logits)
    bce = -(target * torch.log(probs) + (1 - target) * torch.log(1 - probs)).flatten(1).sum(dim=1)
    assert torch.allclose(reconstruction_loss(logits, target, "bce"), bce, atol=1e-4)
    squared = F.mse_loss(probs, target, reduction="none").flatten(1).sum(dim=1)
    assert torch.allclose(reconstruction_loss(logits, target, "mse"), squared, atol=1e-5)
    assert reconstruction_loss(logits.bfloat16(), target, "bce").dtype == torch.float32


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here; the missing-device error cannot be shown")
    with pytest.raises(RuntimeError, match="cuda"):
        select_device("cuda")
