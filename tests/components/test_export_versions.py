"""Versioned exports: every export is a new complete `v<N>`, `latest` moves only to complete ones.

The failed export is real: a decoder that stays random in eval mode (dropout forced on) exports
to ONNX but fails the torch-vs-onnxruntime parity check, after the encoder was already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from components.export import ExportError, ExportResult, export_model
from components.models import build_model
from components.presets import load_config
from components.runtime import AutoencoderRuntime, ModelFolderError
from tests.exports import export_tiny

PROJECT = Path(__file__).resolve().parents[2]
SHAPE = (1, 16, 16)


def _hashes_match(folder: Path) -> bool:
    manifest = json.loads((folder / "manifest.json").read_text())
    return all(
        hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        for name, digest in manifest["files"].items()
    )


def _leftovers(root: Path) -> list[str]:
    """Anything an export may only hold while it runs: staging folders and not-yet-renamed files."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if ".staging-" in p.name or "partial" in p.name
    )


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExportResult, ExportResult]:
    """Two exports of one name (seeds 0 and 1): exported/m/v1, v2, latest. Copy before changing it."""
    root = tmp_path_factory.mktemp("versions")
    return export_tiny(root, "m", seed=0), export_tiny(root, "m", seed=1)


@pytest.fixture
def exports(two_versions: tuple[ExportResult, ExportResult], tmp_path: Path) -> Path:
    """A private copy of the two-version export root (symlinks kept as symlinks)."""
    source = two_versions[0].folder.parent.parent
    return Path(shutil.copytree(source, tmp_path / "exported", symlinks=True))


def test_each_export_is_a_new_version_and_latest_follows(
    two_versions: tuple[ExportResult, ExportResult],
) -> None:
    first, second = two_versions
    root = first.folder.parent
    assert (first.folder, second.folder) == (root / "v1", root / "v2")
    assert os.readlink(root / "latest") == "v2"  # relative: the folder can be moved as a whole
    assert _hashes_match(first.folder) and _hashes_match(second.folder)  # v1 was not touched
    assert first.manifest["files"] != second.manifest["files"]

    assert AutoencoderRuntime.load(root).folder == second.folder
    assert AutoencoderRuntime.load(root / "latest").folder == second.folder  # pinned to v2, not the link
    assert AutoencoderRuntime.load(root / "v1").manifest["files"] == first.manifest["files"]
    assert _leftovers(root) == []


class _RandomDecoder(nn.Module):
    """Dropout forced on: exports fine, but onnxruntime's output differs from torch's every call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.inner(code), p=0.5, training=True)


def test_failed_export_leaves_latest_on_the_previous_complete_version(exports: Path) -> None:
    cfg = load_config(
        None, overrides=["name=m", "data.image_size=16", "model.channels=[4, 4]", f"export.dir={exports}"]
    )
    broken = build_model(cfg.model, SHAPE, SHAPE).eval()
    broken.decoder = _RandomDecoder(broken.decoder)

    with pytest.raises(ExportError, match=r"decoder\.onnx: onnxruntime differs from torch"):
        export_model(broken, cfg, SHAPE)

    root = exports / "m"
    assert sorted(p.name for p in root.iterdir()) == [".lock", "latest", "v1", "v2"]
    assert os.readlink(root / "latest") == "v2"
    assert _leftovers(exports) == []  # the encoder written before the failure is gone too
    assert _hashes_match(root / "v2")
    assert AutoencoderRuntime.load(root).folder == root / "v2"


_EXPORT_SCRIPT = """
import sys
from pathlib import Path
from tests.exports import export_tiny
export_tiny(Path(sys.argv[1]), "m", seed=1)
"""


def test_export_killed_midway_leaves_latest_alone_and_is_cleaned_up(exports: Path) -> None:
    root = exports / "m"
    process = subprocess.Popen(
        [sys.executable, "-c", _EXPORT_SCRIPT, str(exports)],
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not any(p.name.endswith(".onnx") for p in root.glob(".staging-*/*")):  # one graph committed
        assert process.poll() is None, "the export finished before it could be killed"
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)

    assert os.readlink(root / "latest") == "v2"
    assert sorted(p.name for p in root.glob("v*")) == ["v1", "v2"]
    assert len(list(root.glob(".staging-*"))) == 1  # the killed export's, never named like a version
    assert AutoencoderRuntime.load(root).folder == root / "v2"

    again = export_tiny(exports, "m", seed=2)  # the next export removes the dead process's staging folder
    assert again.folder == root / "v3" and _leftovers(exports) == []


def test_keep_limits_the_versions_on_disk(exports: Path) -> None:
    last = export_tiny(exports, "m", "export.keep=2", seed=2)
    root = exports / "m"
    assert sorted(p.name for p in root.glob("v*")) == ["v2", "v3"]
    assert AutoencoderRuntime.load(root).folder == last.folder


def test_broken_layouts_are_named(exports: Path) -> None:
    root = exports / "m"
    shutil.rmtree(root / "v2")
    with pytest.raises(ModelFolderError, match=r"latest points at .*v2, which holds no manifest\.json"):
        AutoencoderRuntime.load(root)
    (root / "latest").unlink()
    with pytest.raises(ModelFolderError, match=r"has versions \(v1\) but no latest link"):
        AutoencoderRuntime.load(root)


def test_an_old_flat_export_folder_still_loads(exports: Path, tmp_path: Path) -> None:
    flat = Path(shutil.copytree(exports / "m" / "v1", tmp_path / "flat"))
    assert AutoencoderRuntime.load(flat).folder == flat


def test_version_folders_follow_the_umask_not_mkdtemps_0700(tmp_path: Path) -> None:
    import os
    import stat

    from components.export_layout import new_staging

    previous = os.umask(0o022)
    try:
        staging = new_staging(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(staging.stat().st_mode) == 0o755
