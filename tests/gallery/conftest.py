"""Every store test runs against both backends: a SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL (absolute SQLite path, or a new database on the session's PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'g.db'}"
    return str(request.getfixturevalue("postgres").new_database())
