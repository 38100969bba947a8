"""Resuming training from its checkpoint: an interrupted run ends where an uninterrupted one does.

The interruption is a real exception from the `on_epoch` callback after the checkpoint of that
epoch was written, which is what a kill between two epochs leaves behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from components.checkpoints import ResumeNote
from components.data import ImageSplits
from components.training import EpochReport, TrainResult, fit
from tests.components.kinds_support import kind_config

EPOCHS = 4
STOP_AFTER = 2
# Measured: a resumed CPU run reproduces the uninterrupted one bit for bit (max |diff| 0.0).
ATOL = 0.0


class Interrupted(RuntimeError):
    pass


def _stop_after(epoch: int, seen: list[int]) -> object:
    def on_epoch(report: EpochReport) -> None:
        seen.append(report.epoch)
        if report.epoch == epoch:
            raise Interrupted(f"stopped after epoch {epoch}")

    return on_epoch


def _max_diff(a: TrainResult, b: TrainResult) -> float:
    first, second = a.model.state_dict(), b.model.state_dict()
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def _losses(result: TrainResult) -> list[tuple[int, float, float, dict[str, float]]]:
    return [(r.epoch, r.train_loss, r.val_loss, r.terms) for r in result.history]


# denoise: the corruption generator; vae-fc: torch's global RNG (sampling in the loss); aae: three
# optimisers and prior samples from the global RNG.
@pytest.mark.parametrize("kind", ["denoise", "vae-fc", "aae"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(
    tmp_path: Path, digits_splits: ImageSplits, kind: str
) -> None:
    epochs = f"train.epochs={EPOCHS}"
    reference = fit(kind_config(tmp_path / "reference", kind, epochs), digits_splits)

    cfg = kind_config(tmp_path / "interrupted", kind, epochs)
    first: list[int] = []
    with pytest.raises(Interrupted):
        fit(cfg, digits_splits, on_epoch=_stop_after(STOP_AFTER, first))  # type: ignore[arg-type]
    assert first == list(range(1, STOP_AFTER + 1))

    notes: list[ResumeNote] = []
    again: list[int] = []
    resumed = fit(cfg, digits_splits, on_epoch=lambda r: again.append(r.epoch), on_resume=notes.append)

    assert [n.epoch for n in notes] == [STOP_AFTER]
    assert f"resumed from epoch {STOP_AFTER} of {EPOCHS}" in notes[0].message
    assert resumed.resumed_from == STOP_AFTER
    assert again == list(range(STOP_AFTER + 1, EPOCHS + 1)), "the resumed run retrained finished epochs"
    assert _losses(resumed) == _losses(reference)
    assert _max_diff(resumed, reference) <= ATOL


def test_finished_checkpoint_is_reused_and_resume_false_retrains(
    tmp_path: Path, digits_splits: ImageSplits
) -> None:
    cfg = kind_config(tmp_path, "denoise", "train.epochs=2")
    done = fit(cfg, digits_splits)
    notes: list[ResumeNote] = []
    trained: list[int] = []
    reused = fit(cfg, digits_splits, on_epoch=lambda r: trained.append(r.epoch), on_resume=notes.append)
    assert trained == [] and reused.resumed_from == 2
    assert "training skipped" in notes[0].message
    assert _max_diff(reused, done) == 0.0
    assert _losses(reused) == _losses(done)

    fresh = kind_config(tmp_path, "denoise", "train.epochs=2", "train.resume=false")
    retrained: list[int] = []
    fit(fresh, digits_splits, on_epoch=lambda r: retrained.append(r.epoch), on_resume=notes.append)
    assert retrained == [1, 2] and len(notes) == 1  # resume=false does not even look


def test_longer_run_continues_a_shorter_one(tmp_path: Path, digits_splits: ImageSplits) -> None:
    """train.epochs is not part of what a checkpoint must match: 2 epochs, then 3, equals 3 at once."""
    reference = fit(kind_config(tmp_path / "reference", "denoise", "train.epochs=3"), digits_splits)
    fit(kind_config(tmp_path / "staged", "denoise", "train.epochs=2"), digits_splits)
    continued = fit(kind_config(tmp_path / "staged", "denoise", "train.epochs=3"), digits_splits)
    assert continued.resumed_from == 2
    assert _max_diff(continued, reference) <= ATOL


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("train.lr=0.001", "train.lr"),
        ("corruption.std=0.3", "corruption.std"),
        ("train.seed=5", "train.seed"),
    ],
)
def test_checkpoint_of_another_config_is_not_resumed(
    tmp_path: Path, digits_splits: ImageSplits, change: str, named: str
) -> None:
    fit(kind_config(tmp_path, "denoise", "train.epochs=2"), digits_splits)
    notes: list[ResumeNote] = []
    trained: list[int] = []
    other = kind_config(tmp_path, "denoise", "train.epochs=2", change)
    result = fit(other, digits_splits, on_epoch=lambda r: trained.append(r.epoch), on_resume=notes.append)
    assert trained == [1, 2] and result.resumed_from == 0
    assert "another config" in notes[0].message and named in notes[0].message
    # The new run's checkpoint replaced the old one, so the next run of the new config resumes it.
    assert torch.load(result.checkpoint, weights_only=True)["config"]["train"]["lr"] == other.train.lr


def test_unreadable_checkpoint_means_training_from_scratch(
    tmp_path: Path, digits_splits: ImageSplits
) -> None:
    cfg = kind_config(tmp_path, "denoise", "train.epochs=1")
    path = Path(cfg.train.checkpoint_dir) / cfg.name / "last.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    notes: list[ResumeNote] = []
    result = fit(cfg, digits_splits, on_resume=notes.append)
    assert result.resumed_from == 0 and "cannot be read" in notes[0].message
    assert torch.load(path, weights_only=True)["epoch"] == 1
