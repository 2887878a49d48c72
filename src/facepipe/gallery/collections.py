"""Collections: several galleries in one store, each with its own subjects, faces, index, threshold
and keys, sharing the store and its one writer thread.

The default collection is the gallery the server always had (``/v1/subjects``, ``/v1/identify``);
the others are rows of the ``collections`` table, made and deleted through ``/v1/collections``. Every
process follows the store's change log: a ``collection`` change opens, retunes or drops that
collection's index here, whichever process made it: PostgreSQL wakes us at once; on SQLite each
gallery's catch-up before a search passes the news on (``Gallery.on_collection``), and a request that
names an unknown collection, or brings an unknown collection key, looks at the log first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import cast

from facepipe.errors import Conflict, InvalidInput, NotFound
from facepipe.gallery import collection_store as sql
from facepipe.gallery.collection_store import Role
from facepipe.gallery.gallery import Gallery, Kind
from facepipe.gallery.records import DEFAULT, Collection
from facepipe.gallery.store import Duplicate, Tx

log = logging.getLogger(__name__)
KINDS: tuple[Kind, ...] = ("exact", "ivf", "hnsw", "pgvector")


@dataclass(slots=True)
class Info:
    """A collection as the API shows it."""

    name: str
    threshold: float | None
    index: str
    created: float
    subjects: int
    faces: int


class Collections:
    def __init__(self, default: Gallery) -> None:
        self.default = default
        self.store = default.store
        self._galleries: dict[str, Gallery] = {DEFAULT: default}
        self._rows: dict[str, Collection] = {}
        self._keys: dict[str, tuple[str, Role]] = {}
        self._lock = threading.Lock()
        self._seq = 0

    @classmethod
    def open(cls, default: Gallery) -> Collections:
        """Every collection of ``default``'s store, indexed, following the store's change log."""
        out = cls(default)
        out.catch_up(force=True)
        out.store.follow(out.catch_up)
        return out

    def _open(self, row: Collection) -> Gallery:
        d = self.default
        kind = cast(Kind, row.index or d.kind)
        g = Gallery(d.store, d.model, d.dim, kind, collection=row.name, writer=d.writer, **d.opts)
        g.created = row.created
        g.on_collection = self.refresh
        g.load()
        return g

    def catch_up(self, force: bool = False) -> None:
        """Apply collection changes since the last look (or all, ``force``), then each gallery's."""
        self.refresh(force)
        for g in list(self._galleries.values()):
            g.catch_up()

    def refresh(self, force: bool = False) -> None:
        """Apply collection changes since the last look (or all, ``force``): one query if none."""
        with self._lock:
            changes = self.store.changes_since(self._seq, "collection")
            if changes or force:
                self._seq = max(self._seq, changes[-1][0] if changes else self.store.last_change())
                self._reconcile()

    def _reconcile(self) -> None:
        """Bring the open galleries and the keys in line with the ``collections`` table."""
        rows = {c.name: c for c in sql.collections(self.store)}
        self.default.on_collection = self.refresh
        for name in [n for n in self._galleries if n != DEFAULT and n not in rows]:
            self._galleries.pop(name).drop()
        for name, row in rows.items():
            g = self._galleries.get(name)
            if g is None or g.created != row.created:
                if g is not None:
                    g.drop()
                self._galleries[name] = self._open(row)
        self._rows, self._keys = rows, sql.keys(self.store)

    # -- lookups ----------------------------------------------------------------------------

    def gallery(self, name: str, look: bool = True) -> Gallery:
        """The gallery of collection ``name`` (404 if there is none, after a look at the store
        unless not ``look``: that is blocking)."""
        g = self._galleries.get(name)
        if look and (g is None or g.dropped):
            self.catch_up()
            g = self._galleries.get(name)
        if g is None or g.dropped:
            raise NotFound(f"no collection {name!r}")
        return g

    def threshold(self, name: str) -> float | None:
        """Collection ``name``'s own identify threshold (None: the server's)."""
        row = self._rows.get(name)
        return None if row is None else row.threshold

    def key_role(self, key: str, look: bool = True) -> tuple[str, Role] | None:
        """(collection, role) of a collection key, or None. ``look``: a key that looks like one but
        is not known yet (another process may have just made it) is looked up in the log first
        (blocking)."""
        digest = sql.digest(key)
        found = self._keys.get(digest)
        if found is None and look and key.startswith(sql.KEY_PREFIX):
            self.refresh()
            found = self._keys.get(digest)
        return found

    def names(self) -> list[str]:
        return [DEFAULT, *sorted(n for n in self._galleries if n != DEFAULT)]

    def info(self, name: str) -> Info:
        """Blocking (counts read the store): call it off the event loop."""
        g = self.gallery(name)
        row = self._rows.get(name)
        subjects, faces = sql.counts(self.store, name)
        created = row.created if row else 0.0
        return Info(name, row.threshold if row else None, g.kind, created, subjects, faces)

    # -- changes ----------------------------------------------------------------------------

    async def create(
        self, name: str, threshold: float | None, index: str | None
    ) -> tuple[Collection, dict[Role, str]]:
        """A new collection and its admin and read keys (the only time they are seen)."""
        sql.check_name(name)
        if name == DEFAULT:
            raise Conflict(f"collection {DEFAULT!r} always exists")
        if index is not None and index not in KINDS:
            raise InvalidInput(f"index: expected one of {list(KINDS)}, got {index!r}")
        if index == "pgvector" and getattr(self.default.store, "vectors", None) is None:
            raise InvalidInput(
                "index: pgvector needs the server's gallery.index: pgvector (PostgreSQL with pgvector)"
            )

        def insert(tx: Tx) -> tuple[Collection, dict[Role, str]]:
            try:
                return sql.insert(tx, name, threshold, index)
            except Duplicate:
                raise Conflict(f"collection {name!r} already exists") from None

        return await self.default.write(insert, "create_collection", self.catch_up)

    async def set_threshold(self, name: str, threshold: float | None) -> None:
        if name == DEFAULT:
            raise InvalidInput(
                "the default collection's threshold is gallery.identify_threshold in the server's config"
            )

        def update(tx: Tx) -> None:
            if not sql.exists(tx, name):
                raise NotFound(f"no collection {name!r}")
            sql.set_threshold(tx, name, threshold)

        await self.default.write(update, "update_collection", self.catch_up)

    async def delete(self, name: str) -> tuple[int, int]:
        """Delete collection ``name`` with everything in it, erased from the store's files:
        (subjects, faces) deleted."""
        if name == DEFAULT:
            raise InvalidInput(f"the {DEFAULT!r} collection cannot be deleted (delete its subjects)")

        def delete(tx: Tx) -> tuple[int, int]:
            if not sql.exists(tx, name):
                raise NotFound(f"no collection {name!r}")
            return sql.delete(tx, name)

        out: tuple[int, int] = await self.default.write(delete, "delete_collection", self.catch_up)
        log.info("collection %s deleted: %d subjects, %d faces erased", name, *out)
        return out

    def close(self) -> None:
        self.default.close()
