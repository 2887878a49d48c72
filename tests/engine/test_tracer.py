"""The tracer log stays under its size cap: rotated past ``max_bytes``, ``backups`` older files kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.config import parse_config
from facepipe.engine.tracer import Tracer
from facepipe.errors import ConfigError


def test_the_log_is_rotated_and_capped(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "pipeline.tracer"
    path.parent.mkdir()
    tracer = Tracer(path, 10, list, max_bytes=4096, backups=2)
    for _ in range(400):  # each record (no pipelines) is a few hundred bytes: ~30 rotations
        tracer.write_once()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["pipeline.tracer", "pipeline.tracer.1", "pipeline.tracer.2"]
    assert all((path.parent / f).stat().st_size <= 4096 for f in files)
    assert path.read_text().splitlines()[0].endswith("= TRACER ======================")  # whole records
    assert "TRACER" in path.read_text() and "TRACER" in (path.parent / "pipeline.tracer.2").read_text()


def test_no_backups_keeps_one_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.tracer"
    tracer = Tracer(path, 10, list, max_bytes=4096, backups=0)
    for _ in range(100):
        tracer.write_once()
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.tracer"]
    assert 0 < path.stat().st_size <= 4096


def test_the_cap_is_validated_by_key_path() -> None:
    with pytest.raises(ConfigError, match=r"dag\.tracer\.max_bytes"):
        parse_config({"dag": {"tracer": {"max_bytes": 10}}})
