"""Training checkpoints: written atomically each epoch, and resumed only when they fit the config.

A checkpoint holds everything the next epoch depends on: the weights, the optimiser states, the
history so far and the three random number generators (the shuffling generator, the corruption
generator and torch's global one, which VAE and AAE losses draw from). Restoring all of them
makes a resumed run take exactly the steps an uninterrupted run would have taken.

A checkpoint is resumed only when it was written for the same training: the same data, corruption,
model and train settings, except the ones that do not change what an epoch computes (the number
of epochs, the progress bar, threads, where checkpoints live). Anything else is trained from
scratch, and `ResumeNote.message` says why.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.config import RunConfig

CHECKPOINT_FORMAT = 2
# Sections of the run config that decide what training computes, and within them the keys that do not.
_SECTIONS = ("data", "corruption", "model", "train")
_INDEPENDENT = {
    "data": {"cache_dir", "download"},
    "train": {"epochs", "progress", "checkpoint_dir", "resume", "retries", "num_threads"},
}


@dataclass(frozen=True)
class ResumeNote:
    """What `fit` found at the checkpoint path: `epoch` > 0 when it resumed from there."""

    checkpoint: Path
    epoch: int
    epochs: int
    message: str

    @property
    def resumed(self) -> bool:
        return self.epoch > 0


def save_checkpoint(path: Path, payload: dict[str, object]) -> None:
    """Write to a temporary file beside `path`, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".pt.tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def training_identity(config: dict[str, Any]) -> dict[str, Any]:
    """Dotted key → value of the settings a checkpoint must share with the run that resumes it."""
    out: dict[str, Any] = {}
    for section in _SECTIONS:
        values = config.get(section, {})
        kept = {k: v for k, v in values.items() if k not in _INDEPENDENT.get(section, set())}
        _flatten(section, kept, out)
    return out


def config_differences(saved: dict[str, Any], cfg: RunConfig) -> list[str]:
    """`key: saved → now` for every training setting that differs (empty: the checkpoint fits)."""
    before, now = training_identity(saved), training_identity(cfg.model_dump(mode="json"))
    return [
        f"{key}: {before.get(key, '(unset)')} → {now.get(key, '(unset)')}"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key)
    ]


def rng_states(
    order_rng: torch.Generator, noise_rng: torch.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """The generators' states as CPU byte tensors (loadable with `weights_only=True`)."""
    states = {"order": order_rng.get_state(), "noise": noise_rng.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng_states(
    states: dict[str, torch.Tensor],
    order_rng: torch.Generator,
    noise_rng: torch.Generator,
    device: torch.device,
) -> None:
    order_rng.set_state(states["order"])
    noise_rng.set_state(states["noise"])
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def resumable_state(path: Path, cfg: RunConfig, device: torch.device) -> tuple[dict[str, Any] | None, str]:
    """The checkpoint's contents if this run may resume from it, else None; and a sentence saying which.

    Never raises for a bad checkpoint: an unreadable or foreign one is a reason to start fresh.
    """
    epochs = cfg.train.epochs
    if not path.is_file():
        return None, f"no checkpoint at {path}; training from epoch 1"
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch raises several kinds
        return None, f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); training from scratch"
    if state.get("format") != CHECKPOINT_FORMAT or "rng" not in state:
        return None, (
            f"checkpoint {path} has no random generator states (written by an older aeflow), so it cannot "
            "be resumed exactly; training from scratch"
        )
    differences = config_differences(state.get("config", {}), cfg)
    if differences:
        shown = "; ".join(differences[:4]) + ("; …" if len(differences) > 4 else "")
        return None, f"checkpoint {path} was written for another config ({shown}); training from scratch"
    if state.get("device") != device.type:
        return None, (
            f"checkpoint {path} was written on {state.get('device')}, this run trains on {device.type}; "
            "training from scratch"
        )
    done = int(state["epoch"])
    if done > epochs:
        return None, (
            f"checkpoint {path} holds {done} epochs, more than train.epochs={epochs}; training from scratch"
        )
    if done == epochs:
        return state, (
            f"checkpoint {path} already holds all {epochs} epochs of this config: training skipped, "
            "its model is used (set train.resume=false to train again)"
        )
    return state, f"resumed from epoch {done} of {epochs} (checkpoint {path})"
