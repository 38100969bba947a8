"""DDP pieces without torchrun: batch slicing, launch checks, config refusals, and fit() in a real
one-process gloo group (the two-process equivalence runs torchrun in tests/flows/test_ddp.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from components import distributed
from components.config import RunConfig
from components.data import ImageSplits
from components.distributed import DistributedSetupError, Rank
from components.presets import ConfigError, load_config
from components.training import fit


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [4, 5, 7, 64, 197])
def test_shards_cover_the_global_batch_once_in_order(world_size: int, n: int) -> None:
    parts = [distributed.shard(n, Rank(r, world_size, r)) for r in range(world_size)]
    rows = [i for part in parts for i in range(n)[part]]
    assert rows == list(range(n))
    sizes = [part.stop - part.start for part in parts]
    assert max(sizes) - min(sizes) <= 1


def test_batch_share_weights_sum_to_one_for_an_uneven_batch() -> None:
    clean = torch.arange(5.0).reshape(5, 1, 1, 1)
    weights, seen = [], []
    for r in range(2):
        share = distributed.BatchShare(Rank(r, 2, r))
        part, noisy, labels = share.take(clean, clean + 10, None)
        weights.append(share.weight)
        seen += part.flatten().tolist()
        assert torch.equal(noisy, part + 10) and labels is None
    assert weights == [3 / 5, 2 / 5] and seen == [0, 1, 2, 3, 4]


def test_missing_torchrun_environment_says_how_to_launch() -> None:
    with pytest.raises(DistributedSetupError, match=r"RANK, WORLD_SIZE, LOCAL_RANK.*torch\.distributed\.run"):
        distributed.rank_from_env({})
    assert distributed.rank_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Rank(3, 4, 1)
    assert not Rank(3, 4, 1).is_main and Rank(0, 4, 0).is_main


def test_backend_choice() -> None:
    assert distributed.backend_for(torch.device("cpu"), "auto") == "gloo"
    assert distributed.backend_for(torch.device("cuda", 0), "auto") == "nccl"
    assert distributed.backend_for(torch.device("cuda", 0), "gloo") == "gloo"
    with pytest.raises(DistributedSetupError, match="nccl needs CUDA"):
        distributed.backend_for(torch.device("cpu"), "nccl")


def test_last_batch_must_reach_every_rank() -> None:
    distributed.check_batches(197, 64, Rank(0, 2, 0))  # last batch 5: 3 + 2
    with pytest.raises(DistributedSetupError, match="last batch holds 1 image"):
        distributed.check_batches(193, 64, Rank(0, 2, 0))
    with pytest.raises(DistributedSetupError, match="multiple of 3"):
        distributed.check_batches(200, 64, Rank(0, 3, 0))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.processes=3"], r"batch_size=64 .* multiple of 3"),
        (["train.compile=true"], "compile is not supported"),
        (["model.kind=aae", "model.latent_dim=2", "corruption.kind=none"], "aae takes three optimiser"),
    ],
)
def test_config_refuses_what_ddp_cannot_do(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides=["train.strategy=ddp", *overrides])
    load_config("smoke", overrides=overrides)  # each is fine for one process


def test_fit_with_ddp_but_no_process_group_fails_before_training(
    make_config: Callable[..., RunConfig], tiny_overrides: tuple[str, ...], digits_splits: ImageSplits
) -> None:
    cfg = make_config(*tiny_overrides, "train.strategy=ddp", "train.epochs=1")
    with pytest.raises(DistributedSetupError, match="no process group"):
        fit(cfg, digits_splits)
    assert not Path(cfg.train.checkpoint_dir).exists()


@pytest.fixture
def one_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A real gloo group of one process (file rendezvous), as torchrun would leave it."""
    monkeypatch.setenv("LOCAL_RANK", "0")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_fit_under_ddp_of_one_process_matches_plain_fit_and_comes_back_plain(
    make_config: Callable[..., RunConfig],
    tiny_overrides: tuple[str, ...],
    digits_splits: ImageSplits,
    one_process_group: None,
) -> None:
    """The DDP path (wrapper, weighted all-reduce hook, summed epoch terms) changes nothing for one rank."""
    common = (*tiny_overrides, "train.epochs=2")
    plain = fit(make_config(*common, "name=plain"), digits_splits)
    ddp = fit(make_config(*common, "name=ddp", "train.strategy=ddp", "train.processes=1"), digits_splits)
    for name, value in plain.model.state_dict().items():
        assert torch.allclose(ddp.model.state_dict()[name], value, rtol=0, atol=1e-6), name
    for a, b in zip(plain.history, ddp.history, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-6)
        assert b.val_loss == pytest.approx(a.val_loss, rel=1e-6)
    assert "losses" not in vars(ddp.model)  # the DDP shadow is gone
    assert ddp.checkpoint.is_file()
