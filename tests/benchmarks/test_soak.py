"""The soak's verdict compares its first and last windows: a climbing p99 or RSS must be called out."""

from __future__ import annotations

from collections import Counter

from benchmarks.serve_http import LoadResult
from benchmarks.soak import Minute, verdict


def _minute(index: int, p99_ms: float, rss: float, unexpected: int = 0) -> Minute:
    result = LoadResult(clients=16, seconds=60.0, latencies=[0.01] * 98 + [p99_ms / 1000] * 2,
                        statuses=Counter({200: 100}), unexpected=unexpected)  # fmt: skip
    return Minute(index, result, rss_end=rss, rss_peak=rss + 1)


def test_flat_soak_is_called_flat() -> None:
    lines = verdict([_minute(1, 50, 100), _minute(2, 55, 104)], p99_ratio=1.5, rss_growth_mib=20)
    assert "errors over the whole soak: 0" in lines[0]
    assert "; flat" in lines[1] and "; flat" in lines[2]


def test_climbing_p99_memory_and_errors_are_reported() -> None:
    minutes = [_minute(1, 50, 100), _minute(2, 90, 150, unexpected=3)]
    lines = verdict(minutes, p99_ratio=1.5, rss_growth_mib=20)
    assert "errors over the whole soak: 3" in lines[0]
    assert "NOT flat" in lines[1] and "NOT flat" in lines[2]
    assert minutes[1].requests == 100 and minutes[1].errors == 3
