"""The soak check (bench/soak.py), bounded: 40 s of mixed traffic passes it, and the same server with a
leak injected fails it on RSS growth, so a pass means something."""

from __future__ import annotations

from pathlib import Path

from bench import soak

SECONDS, RATE = 40.0, 10.0


def test_mixed_traffic_leaves_rss_and_p99_level(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    v = soak.soak(models_dir, lfw_dir, tmp_path, SECONDS, rate=RATE)
    assert v.requests >= 0.9 * SECONDS * RATE
    assert v.passed, v.failures


def test_a_leaking_server_fails_the_check(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    v = soak.soak(models_dir, lfw_dir, tmp_path, SECONDS, leak=True, rate=RATE)
    assert any("RSS grew" in f for f in v.failures), (v.failures, v.rss_start_mb, v.rss_end_mb)
