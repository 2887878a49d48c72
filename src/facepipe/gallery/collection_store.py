"""The statements of collections: their rows, their keys (SHA-256 digests only) and their erasure.

Every write logs a ``collection`` change (ref: the name) in its transaction, so that every server
process opens, retunes or drops that collection's index when it follows the log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Literal

from facepipe.errors import InvalidInput
from facepipe.gallery import writes
from facepipe.gallery.records import DEFAULT, Collection
from facepipe.gallery.store import Store, Tx

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
Role = Literal["admin", "read"]
ROLES: tuple[Role, ...] = ("admin", "read")
KEY_PREFIX = "fpc_"  # tells a collection key from a server key at a glance (logs, leaks)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidInput(
            f"collection {name[:70]!r}: a name is 1-63 lowercase letters, digits, '_' or '-', starting"
            " with a letter or digit"
        )
    return name


def digest(key: str) -> str:
    """What the store keeps of a key: keys are random (192 bits), so a plain SHA-256 suffices."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def _collection(row: tuple[object, ...]) -> Collection:
    name, threshold, index, created = row
    return Collection(
        str(name),
        None if threshold is None else float(threshold),  # type: ignore[arg-type]
        None if index is None else str(index),
        float(created),  # type: ignore[arg-type]
    )


def collections(store: Store) -> list[Collection]:
    """Every collection but the default, by name."""
    rows = store.rows("SELECT name, threshold, index_kind, created FROM collections ORDER BY name")
    return [_collection(r) for r in rows]


def collection(store: Store, name: str) -> Collection | None:
    rows = store.rows("SELECT name, threshold, index_kind, created FROM collections WHERE name = ?", (name,))
    return _collection(rows[0]) if rows else None


def keys(store: Store) -> dict[str, tuple[str, Role]]:
    """Key digest -> (collection, role), for every collection key."""
    rows = store.rows("SELECT digest, collection, role FROM collection_keys")
    return {str(d): (str(c), "admin" if r == "admin" else "read") for d, c, r in rows}


def counts(store: Store, name: str) -> tuple[int, int]:
    """(subjects, faces) of collection ``name``."""
    row = store.rows(
        "SELECT (SELECT COUNT(*) FROM subjects WHERE collection = ?), (SELECT COUNT(*) FROM faces f"
        " JOIN subjects s ON s.id = f.subject_id WHERE s.collection = ?)",
        (name, name),
    )[0]
    return int(row[0]), int(row[1])


# -- writes: statements inside ``Store.write`` ------------------------------------------------


def insert(
    tx: Tx, name: str, threshold: float | None, index: str | None
) -> tuple[Collection, dict[Role, str]]:
    """A new collection with one admin and one read key: the keys come back here, and only here."""
    now = time.time()
    tx.execute(
        "INSERT INTO collections (name, threshold, index_kind, created) VALUES (?, ?, ?, ?)",
        (name, threshold, index, now),
    )
    made: dict[Role, str] = {}
    for role in ROLES:
        made[role] = new_key()
        tx.execute(
            "INSERT INTO collection_keys (digest, collection, role, created) VALUES (?, ?, ?, ?)",
            (digest(made[role]), name, role, now),
        )
    writes.log(tx, "collection", name)
    return Collection(name, threshold, index, now), made


def copy(tx: Tx, c: Collection, keys: list[tuple[str, str]]) -> None:
    """Collection ``c`` with its key digests (``keys``: digest, role), as another store has it."""
    tx.execute(
        "INSERT INTO collections (name, threshold, index_kind, created) VALUES (?, ?, ?, ?)",
        (c.name, c.threshold, c.index, c.created),
    )
    for d, role in keys:
        tx.execute(
            "INSERT INTO collection_keys (digest, collection, role, created) VALUES (?, ?, ?, ?)",
            (d, c.name, role, c.created),
        )
    writes.log(tx, "collection", c.name)


def exists(tx: Tx, name: str) -> bool:
    if name == DEFAULT:
        return True
    return tx.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone() is not None


def set_threshold(tx: Tx, name: str, threshold: float | None) -> None:
    tx.execute("UPDATE collections SET threshold = ? WHERE name = ?", (threshold, name))
    writes.log(tx, "collection", name)


def delete(tx: Tx, name: str) -> tuple[int, int]:
    """Delete collection ``name``, its keys, subjects and faces: (subjects, faces) deleted. The
    backend then erases their bytes from its files (``Tx.erased``), as for any delete."""
    faces = tx.execute(
        "SELECT COUNT(*) FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.collection = ?", (name,)
    ).fetchone()[0]
    tx.execute(
        "DELETE FROM faces WHERE subject_id IN (SELECT id FROM subjects WHERE collection = ?)", (name,)
    )
    subjects = tx.execute("DELETE FROM subjects WHERE collection = ?", (name,)).rowcount
    tx.execute("DELETE FROM collections WHERE name = ?", (name,))
    writes.log(tx, "collection", name)
    tx.erased = True
    return int(subjects), int(faces)
