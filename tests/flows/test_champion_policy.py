"""The champion metric's comparison: strictly better, by more than float noise between engines."""

from __future__ import annotations

import pytest

from flows.settings import ChampionPolicy


@pytest.mark.parametrize(
    ("metric", "challenger", "incumbent", "promoted"),
    [
        ("test_psnr", 18.019510752, 18.019510601, False),  # same weights, torch vs onnxruntime
        ("test_psnr", 18.05, 18.02, True),
        ("test_psnr", 17.9, 18.0, False),
        ("test_mse", 0.016650001, 0.016650002, False),
        ("test_mse", 0.0160, 0.0166, True),
        ("test_ssim", 0.700, 0.690, True),
    ],
)
def test_beats_needs_more_than_rounding(
    metric: str, challenger: float, incumbent: float, promoted: bool
) -> None:
    assert ChampionPolicy(metric=metric).beats(challenger, incumbent) is promoted  # type: ignore[arg-type]
