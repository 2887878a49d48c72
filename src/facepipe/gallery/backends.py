"""Which store backend a ``gallery.store`` URL names: ``sqlite:///<file>`` (relative to the data
directory, or absolute with four slashes) or ``postgresql://...`` (libpq URL; psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facepipe.errors import ConfigError
from facepipe.gallery.store import Store

if TYPE_CHECKING:
    from facepipe.gallery.pgvector import VectorOptions

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def sqlite_path(url: str, data_dir: Path) -> Path:
    path = Path(url.removeprefix(SQLITE_PREFIX))
    return path if path.is_absolute() else data_dir / path


def open_store(
    url: str, data_dir: Path, pg_erase: str = "vacuum", vectors: VectorOptions | None = None
) -> Store:
    """The store ``url`` names, open and migrated to the current schema (``pg_erase``: what a
    PostgreSQL store runs after a delete, ``vacuum`` or ``vacuum_full``; ``vectors``: keep pgvector's
    ``face_vectors`` and its HNSW index, for ``gallery.index: pgvector``)."""
    if vectors is not None and not url.startswith(POSTGRES_PREFIXES):
        raise ConfigError("gallery.index: pgvector needs gallery.store: postgresql://...")
    if url.startswith(SQLITE_PREFIX):
        from facepipe.gallery.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(url, data_dir))
    if url.startswith(POSTGRES_PREFIXES):
        from facepipe.gallery.pg_store import PostgresStore

        return PostgresStore(url, full_vacuum=pg_erase == "vacuum_full", vectors=vectors)
    raise ConfigError(
        f"gallery.store: {url.split(':', maxsplit=1)[0]!r} is not a store: use sqlite:///... or postgresql://..."
    )


def redact(url: str, data_dir: Path) -> str:
    """``url`` without a password: the SQLite file's absolute path, or PostgreSQL's host:port/db."""
    if url.startswith(SQLITE_PREFIX):
        return SQLITE_PREFIX + str(sqlite_path(url, data_dir).resolve())
    if url.startswith(POSTGRES_PREFIXES):
        from facepipe.gallery.pg_store import where

        return "postgresql://" + where(url)
    return url.split(":", maxsplit=1)[0]
