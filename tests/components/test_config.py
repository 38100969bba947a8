"""Config: presets validate, layering order preset → YAML → overrides, clear errors naming the key."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from components.config import DataConfig, RunConfig
from components.presets import PRESETS, ConfigError, load_config, parse_override


def _json(value: Any) -> Any:
    """Normalise a preset value the way `model_dump(mode="json")` writes it (paths as strings)."""
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_validates_and_applies_its_values(name: str) -> None:
    before = copy.deepcopy(PRESETS)
    cfg = load_config(preset=name)

    assert isinstance(cfg, RunConfig)
    dumped = cfg.model_dump(mode="json")
    for section, values in PRESETS[name].items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert dumped[section][key] == _json(value), f"{name}: {section}.{key}"
        else:
            assert dumped[section] == _json(values)
    # The dumped config is itself a valid config that rebuilds the same object (what a manifest stores).
    assert RunConfig.model_validate(dumped) == cfg
    # Loading must not mutate the shared preset table.
    assert before == PRESETS


def _a_preset() -> str:
    return sorted(PRESETS)[0]


def test_layering_order_is_preset_then_file_then_overrides(tmp_path: Path) -> None:
    name = _a_preset()
    base = load_config(preset=name)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "train": {"epochs": base.train.epochs + 1, "lr": base.train.lr * 2},
                "eval": {"grid_images": base.eval.grid_images + 1},
            }
        )
    )

    cfg = load_config(
        preset=name,
        config_file=config_file,
        overrides=[f"train.epochs={base.train.epochs + 2}", f"train.epochs={base.train.epochs + 3}"],
    )

    assert cfg.train.epochs == base.train.epochs + 3  # last override wins over earlier ones and the file
    assert cfg.train.lr == pytest.approx(base.train.lr * 2)  # the file wins over the preset
    assert cfg.eval.grid_images == base.eval.grid_images + 1
    # Sections are merged key by key: what neither file nor override touches keeps the preset's value.
    assert cfg.train.batch_size == base.train.batch_size
    assert cfg.train.loss == base.train.loss
    assert cfg.data == base.data
    assert cfg.model == base.model
    assert cfg.name == base.name


def test_file_without_preset_starts_from_defaults(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text("data:\n  image_size: 32\n")
    cfg = load_config(config_file=config_file)
    assert cfg.data.image_size == 32
    assert cfg.train == RunConfig().train


def test_parse_override_reads_values_as_yaml() -> None:
    epochs = parse_override("train.epochs=5")
    assert epochs == {"train": {"epochs": 5}}
    assert type(epochs["train"]["epochs"]) is int
    assert parse_override("train.lr=0.01")["train"]["lr"] == 0.01
    assert parse_override("model.channels=[8, 4, 2]") == {"model": {"channels": [8, 4, 2]}}
    assert parse_override("data.limit=null") == {"data": {"limit": None}}
    assert parse_override("train.progress=false") == {"train": {"progress": False}}
    assert parse_override("name=my-run") == {"name": "my-run"}


def test_overrides_reach_the_config_with_their_types() -> None:
    cfg = load_config(overrides=["train.epochs=5", "model.channels=[8, 4]", "data.limit=50", "name=typed"])
    assert cfg.train.epochs == 5
    assert cfg.model.channels == [8, 4]
    assert cfg.data.limit == 50
    assert cfg.name == "typed"


def _error(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    return str(info.value)


def test_unknown_preset_is_named_with_the_choices() -> None:
    message = _error(preset="no-such-preset")
    assert "no-such-preset" in message
    for name in PRESETS:
        assert name in message


def test_unknown_key_is_rejected_and_named() -> None:
    message = _error(overrides=["train.epoch=5"])
    assert "train.epoch" in message


def test_unknown_key_in_yaml_file_is_rejected_and_named(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("data:\n  imagesize: 32\n")
    assert "data.imagesize" in _error(config_file=config_file)


def test_negative_noise_std_is_rejected_and_named() -> None:
    message = _error(overrides=["corruption.std=-0.1"])
    assert "corruption.std" in message


def test_downsample_needs_an_image_size_divisible_by_the_factor() -> None:
    message = _error(overrides=["corruption.kind=downsample", "corruption.factor=4", "data.image_size=18"])
    assert "data.image_size" in message
    assert "corruption.factor" in message
    # The same size is fine when the factor divides it, and for other corruptions.
    ok = load_config(overrides=["corruption.kind=downsample", "corruption.factor=2", "data.image_size=18"])
    assert (ok.data.image_size, ok.corruption.factor) == (18, 2)
    other = load_config(overrides=["corruption.kind=gaussian", "corruption.factor=4", "data.image_size=18"])
    assert (other.data.image_size, other.corruption.factor) == (18, 4)


def test_even_kernel_size_is_rejected_and_named() -> None:
    assert "model.kernel_size" in _error(overrides=["model.kernel_size=4"])


@pytest.mark.parametrize("text", ["train.epochs", "train.epochs 5", ".epochs=5", "train..epochs=5", "=5"])
def test_malformed_override_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[text])
    message = str(info.value)
    assert repr(text) in message
    assert "key=value" in message


def test_missing_or_non_mapping_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert str(missing) in _error(config_file=missing)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert str(listing) in _error(config_file=listing)


def _dotted_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _dotted_fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_flat_has_one_string_per_leaf_field() -> None:
    cfg = load_config(overrides=["train.epochs=7", "model.channels=[8, 4]", "data.limit=40"])
    flat = cfg.flat()

    assert set(flat) == set(_dotted_fields(RunConfig))
    assert all(isinstance(value, str) for value in flat.values())
    assert flat["train.epochs"] == "7"
    assert flat["data.limit"] == "40"
    assert json.loads(flat["model.channels"]) == [8, 4]
    assert flat["name"] == cfg.name


def test_cache_key_follows_the_data_not_the_cache_location(tmp_path: Path) -> None:
    base = DataConfig(image_size=16, cache_dir=tmp_path / "a")
    assert base.cache_key() == DataConfig(image_size=16, cache_dir=tmp_path / "b").cache_key()
    assert base.cache_key() == DataConfig(image_size=16, cache_dir=tmp_path / "a", download=True).cache_key()
    assert base.cache_key() != DataConfig(image_size=32, cache_dir=tmp_path / "a").cache_key()
    assert base.cache_key() != DataConfig(image_size=16, seed=1, cache_dir=tmp_path / "a").cache_key()
    assert base.cache_key() != DataConfig(image_size=16, limit=100, cache_dir=tmp_path / "a").cache_key()
    # The root is compared as a resolved path: relative and absolute spellings of one folder agree.
    relative = DataConfig(root=Path("data"))
    absolute = DataConfig(root=Path.cwd() / "data")
    assert relative.cache_key() == absolute.cache_key()
