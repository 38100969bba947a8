"""int8 static quantisation of an exported model folder, with onnxruntime's own quantiser.

Conv nets need *static* quantisation (dynamic only touches MatMul/Gemm): activations get scales
from calibration batches run through the fp32 graphs. QDQ format with per-channel weights is
onnxruntime's recommended layout for CPUs. The result is a sibling folder with the same manifest
layout (new hashes), so `AutoencoderRuntime` and the service load it like any export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from components.export import MANIFEST_NAME, sha256_of


class _Batches(CalibrationDataReader):
    def __init__(self, name: str, data: np.ndarray, batch: int) -> None:
        self._feeds = iter([{name: data[i : i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _quantize_graph(source: Path, target: Path, input_name: str, calibration: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(target),
            _Batches(input_name, calibration, 64),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def quantize_int8(folder: Path, out: Path, calibration_images: np.ndarray) -> Path:
    """Write an int8 copy of the export in `folder` to `out`; returns `out`.

    Only unconditional, single-input graphs are handled (the encoder's code feeds the decoder's
    calibration); anything else is refused with a message rather than half-quantised.
    """
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    if manifest.get("conditional") or manifest.get("variational"):
        raise ValueError(
            f"{folder}: int8 quantisation handles single-input, deterministic graphs; "
            f"this is a {manifest.get('model_kind')} model"
        )
    images = np.ascontiguousarray(calibration_images, dtype=np.float32)
    encoder = ort.InferenceSession(str(folder / manifest["graphs"]["encoder"]["file"]))
    codes = encoder.run(None, {"images": images})[0]
    feeds = {"encoder": ("images", images), "decoder": ("code", codes), "model": ("images", images)}
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for role, spec in manifest["graphs"].items():
            name, data = feeds[role]
            _quantize_graph(folder / spec["file"], staging / spec["file"], name, data)
        manifest["files"] = {
            spec["file"]: sha256_of(staging / spec["file"]) for spec in manifest["graphs"].values()
        }
        manifest["quantization"] = {"kind": "int8-static", "format": "QDQ", "calibration_images": len(images)}
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out
