"""Request statistics stay bounded when nobody reads them, and counts stay exact."""

from __future__ import annotations

from facepipe.engine.stats import RequestStats


def test_window_bounds_memory_but_not_counts() -> None:
    stats = RequestStats(window=10)
    for i in range(1000):
        stats.record(float(i), request_id=i, ok=i % 2 == 0)
    snap = stats.snapshot()
    assert snap.count == 1000 and snap.success == 0.5
    assert snap.latency_ms[".50"] >= 990  # percentiles over the most recent window
    assert len(snap.error_ids) == 100 and snap.error_ids[-1] == 999
    assert stats.snapshot().count == 0
