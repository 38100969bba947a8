"""Opening an export folder safely: find the version to load, check every graph against its manifest.

Three things can be wrong with a folder, and each gets its own message:
- a graph is missing or truncated (an interrupted copy): its size or sha256 differs from the manifest;
- the manifest belongs to another export (copied over from another model or version): none of
  the graphs match its hashes, or the graphs' inputs and outputs are not the ones it describes;
- a graph matches its hash but onnxruntime cannot load it (a manifest rewritten to fit a broken file).

numpy-free and torch-free, like `components.runtime`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnxruntime as ort

from components.export_layout import MANIFEST_NAME, LayoutError, resolve_export


class ModelFolderError(ValueError):
    """The export folder is missing, incomplete, or does not match its manifest."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_folder(source: Path) -> Path:
    """`exported/<name>` (→ its `latest` version), a version folder, or an old flat export folder."""
    try:
        return resolve_export(source)
    except LayoutError as err:
        raise ModelFolderError(str(err)) from None


def _describe(manifest: dict[str, Any]) -> str:
    return f"model {manifest.get('name', '?')!r} exported {manifest.get('created', 'at an unknown time')}"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of `folder` once every graph it lists is present and matches its size and sha256."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelFolderError(
            f"{manifest_path} not found: expected an export folder made by `aeflow run` "
            "(encoder.onnx, decoder.onnx, model.onnx, manifest.json)"
        )
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{manifest_path} is not valid JSON: {err}") from None
    missing = [key for key in ("graphs", "input", "latent", "files") if key not in manifest]
    if missing:
        raise ModelFolderError(f"{manifest_path} lacks {', '.join(missing)}; re-export the model")
    unhashed = [spec["file"] for spec in manifest["graphs"].values() if spec["file"] not in manifest["files"]]
    if unhashed:
        listed = ", ".join(unhashed)
        raise ModelFolderError(f"{manifest_path} has no sha256 for {listed}; re-export the model")
    for filename in manifest["files"]:
        if not (folder / filename).is_file():
            raise ModelFolderError(f"{folder / filename} is missing; re-export the model")
    wrong = [name for name, expected in manifest["files"].items() if sha256_file(folder / name) != expected]
    if wrong and len(wrong) == len(manifest["files"]) > 1:
        raise ModelFolderError(
            f"{manifest_path} belongs to another export ({_describe(manifest)}): none of "
            f"{', '.join(sorted(wrong))} matches its sha256. Copy a version folder whole, never a manifest "
            "on its own"
        )
    sizes: dict[str, int] = manifest.get("file_sizes", {})
    for name in wrong:
        actual, size = (folder / name).stat().st_size, sizes.get(name)
        if size is not None and actual < size:
            raise ModelFolderError(
                f"{folder / name} is truncated: {actual} bytes, its manifest says {size} (an interrupted "
                "copy or download?); copy the whole version folder again or re-export the model"
            )
        raise ModelFolderError(
            f"{folder / name} does not match the sha256 in its manifest (truncated, edited or from "
            "another export); re-export the model"
        )
    return manifest


def _io(args: list[Any]) -> list[tuple[str, list[Any]]]:
    return [(a.name, list(a.shape)) for a in args]


def check_graphs_match(
    folder: Path, manifest: dict[str, Any], sessions: dict[str, ort.InferenceSession]
) -> None:
    """The graphs' real inputs and outputs must be the ones the manifest describes.

    Catches a manifest from another model whose hashes were rewritten to fit these files: its shapes,
    not the files', would otherwise decide what the runtime accepts.
    """
    for role, session in sessions.items():
        spec = manifest["graphs"][role]
        declared = [(item["name"], list(item["shape"])) for item in spec.get("inputs", [])]
        declared_out = [(item["name"], list(item["shape"])) for item in spec.get("outputs", [])]
        actual, actual_out = _io(session.get_inputs()), _io(session.get_outputs())
        if declared and (declared != actual or declared_out != actual_out):
            raise ModelFolderError(
                f"{folder / spec['file']} takes {actual} and returns {actual_out}, but {MANIFEST_NAME} "
                f"({_describe(manifest)}) says {declared} → {declared_out}: the manifest is from another "
                "model; re-export or copy the version folder whole"
            )
