"""The gallery: the durable store and the search index kept in step, behind one writer (the index
and its search: ``view.py``).

Every change runs on one writer thread: first the store's transaction commits (with an entry in the
store's change log), then the index follows the log, so the index never holds a face the store lost,
and a searcher never waits for a writer. Several server processes share one store: each follows the
change log before it searches, so an enrolment acknowledged by one is found by all.
Embeddings belong to the model version that produced them; only faces of the serving model are
indexed, and searching while faces of another version remain is refused until ``reembed``.

A gallery is one *collection* of the store (``gallery/collections.py`` holds them all, sharing one
writer thread): it indexes only that collection's faces and follows only its changes. When another
process deletes the collection, the gallery empties its index at its next catch-up (``dropped``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from facepipe.errors import Conflict, InvalidInput, NotFound, NotReady, StoreUnavailable
from facepipe.gallery import collection_store, spans, writes
from facepipe.gallery.records import DEFAULT, subject_key
from facepipe.gallery.store import Duplicate, FaceRecord, NewFace, Store, Subject, Tx
from facepipe.gallery.view import CollectionView, Kind, Match

__all__ = ["Gallery", "Kind", "Match"]
log = logging.getLogger(__name__)
T = TypeVar("T")
SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


class Gallery(CollectionView):
    def __init__(
        self,
        store: Store,
        model: tuple[str, str],
        dim: int,
        kind: Kind = "exact",
        *,
        collection: str = DEFAULT,
        writer: ThreadPoolExecutor | None = None,
        **opts: Any,
    ):
        super().__init__(store, model, dim, kind, collection=collection, **opts)
        self.writer = writer or ThreadPoolExecutor(1, thread_name_prefix="gallery-writer")
        self.write_error: str | None = None  # the last write's failure, until a write succeeds

    @classmethod
    def open(
        cls, store: Store, model: tuple[str, str], dim: int, kind: Kind = "exact", **opts: Any
    ) -> Gallery:
        """Load the index from ``store``, then follow the store's change log (woken by the store
        where it can notify; otherwise before every search)."""
        gallery = cls(store, model, dim, kind, **opts)
        gallery.load()
        store.follow(gallery.catch_up)
        return gallery

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.store.close()

    async def write(self, fn: Callable[[Tx], T], op: str, after: Callable[[], None] | None = None) -> T:
        """Run ``fn`` in one transaction on the writer thread, then bring the index up to date
        (``after``: what to catch up instead of this gallery); traced as ``gallery <op>`` (the wait
        for the writer included)."""

        def run() -> T:
            try:
                out = self.store.write(fn)
            except StoreUnavailable as exc:  # PostgreSQL gone: 503 with its reason, readiness false
                self.write_error = exc.message
                raise
            except sqlite3.OperationalError as exc:  # read-only, disk full, I/O error, locked
                self.write_error = str(exc)
                log.error("gallery: write failed: %s", exc)
                raise NotReady(f"the gallery cannot be written: {exc}") from None
            self.write_error = None
            try:
                (after or self.catch_up)()
            except StoreUnavailable as exc:  # committed: the listener or the next read catches up
                log.warning("index catch-up after a write failed: %s", exc)
            return out

        with spans.span(f"gallery {op}", {"facepipe.gallery.op": op}):
            return await asyncio.wrap_future(self.writer.submit(run))

    def write_problem(self) -> str | None:
        """Why the gallery cannot take writes now (None: it can): readiness turns false meanwhile."""
        path = getattr(self.store, "path", None)  # a file store; PostgreSQL reports through write_error
        if path is not None and (
            not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))
        ):
            return f"gallery {path} is not writable"
        return f"gallery: last write failed: {self.write_error}" if self.write_error else None

    # -- subjects ---------------------------------------------------------------------------

    async def create_subject(self, sid: str | None, name: str, metadata: dict[str, Any]) -> Subject:
        sid = sid or uuid.uuid4().hex
        if not SUBJECT_ID.match(sid):
            raise InvalidInput(f"id: {sid!r} must be 1-128 letters, digits, '_', '.', '@' or '-'")

        def insert(tx: Tx) -> Subject:
            if not collection_store.exists(tx, self.collection):
                raise NotFound(f"no collection {self.collection!r}")
            try:
                return writes.insert_subject(tx, sid, name, metadata, collection=self.collection)
            except Duplicate:
                raise Conflict(f"subject {sid!r} already exists") from None

        return await self.write(insert, "create_subject")

    def key(self, sid: str) -> str:
        """The store's key of subject ``sid`` of this collection."""
        return subject_key(self.collection, sid)

    def subject(self, sid: str) -> Subject:
        found = self.store.subject(self.key(sid))
        if found is None:
            raise NotFound(f"no subject {sid!r}")
        return found

    async def update_subject(self, sid: str, name: str | None, metadata: dict[str, Any] | None) -> Subject:
        def update(tx: Tx) -> Subject:
            old = self.subject(sid)
            new_name = old.name if name is None else name
            new_meta = old.metadata if metadata is None else metadata
            writes.update_subject(tx, self.key(sid), new_name, new_meta)
            return Subject(sid, new_name, new_meta, old.created, old.faces, self.collection)

        return await self.write(update, "update_subject")

    async def delete_subject(self, sid: str) -> int:
        def delete(tx: Tx) -> list[int]:
            if not writes.has_subject(tx, self.key(sid)):
                raise NotFound(f"no subject {sid!r}")
            return writes.delete_subject(tx, self.key(sid))

        removed: list[int] = await self.write(delete, "delete_subject")
        return len(removed)

    # -- faces ------------------------------------------------------------------------------

    async def add_faces(self, sid: str, faces: list[NewFace]) -> list[tuple[FaceRecord, bool]]:
        """Enrol ``faces`` to ``sid`` in one transaction: (record, created) each; an image already
        enrolled to the subject with this model gives back its existing face (``created`` false)."""
        for f in faces:
            if f.embedding.shape != (self.dim,):
                raise InvalidInput(f"embedding has shape {f.embedding.shape}, expected ({self.dim},)")

        key = self.key(sid)

        def insert(tx: Tx) -> list[tuple[FaceRecord, bool]]:
            if not writes.has_subject(tx, key):
                raise NotFound(f"no subject {sid!r}")
            out: list[tuple[FaceRecord, bool]] = []
            seen: dict[str, FaceRecord] = {}
            for f in faces:
                old = seen.get(f.image_sha256) or self.store.face_by_image(key, f.image_sha256, self.model)
                rec = old or writes.insert_face(tx, key, self.model, f)
                seen[f.image_sha256] = rec
                out.append((rec, old is None))
            return out

        return await self.write(insert, "enrol")

    def face(self, fid: int) -> FaceRecord:
        found = self.store.face(fid)
        if found is None or found.collection != self.collection:
            raise NotFound(f"no face {fid}")
        return found

    def subjects(self, offset: int, limit: int, search: str = "") -> tuple[list[Subject], int]:
        """A page of subjects (blocking: call it off the event loop), and how many match in all."""
        return self.store.subjects(offset, limit, search, self.collection)

    def faces_of(self, sid: str) -> list[FaceRecord]:
        """The faces of subject ``sid`` (404 if there is no such subject; blocking)."""
        self.subject(sid)
        return self.store.faces_of(self.key(sid))

    def crop(self, fid: int) -> bytes | None:
        """The stored crop of face ``fid`` (404 if there is no such face; None: kept without one)."""
        self.face(fid)
        return self.store.crop(fid)

    async def delete_face(self, fid: int) -> None:
        def delete(tx: Tx) -> None:
            found = self.store.face(fid)
            if found is None or found.collection != self.collection or not writes.delete_face(tx, fid):
                raise NotFound(f"no face {fid}")

        await self.write(delete, "delete_face")
