"""The gallery: the durable store and the search index kept in step, behind one writer.

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
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from facepipe.errors import ConfigError, Conflict, InvalidInput, NotFound, NotReady, StoreUnavailable
from facepipe.gallery import collection_store, spans, writes
from facepipe.gallery.index import ExactIndex, FaissIndex, make_index
from facepipe.gallery.index import Kind as IndexKind
from facepipe.gallery.pgvector import VectorSearch
from facepipe.gallery.records import DEFAULT, split_key, subject_key
from facepipe.gallery.store import Duplicate, FaceRecord, NewFace, Store, Subject, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")
Kind = IndexKind | Literal["pgvector"]
SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


@dataclass(slots=True, frozen=True)
class Match:
    subject_id: str
    name: str
    similarity: float
    face_id: int


class Gallery:
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
        self.store, self.model, self.dim = store, model, dim
        self.kind, self.opts, self.collection = kind, opts, collection
        # pgvector: identify runs in PostgreSQL and this process holds no vectors nor face map
        self.vectors = VectorSearch(store, collection) if kind == "pgvector" else None
        if self.vectors is not None and getattr(store, "vectors", None) is None:
            raise ConfigError("gallery.index: pgvector needs gallery.store: postgresql://... with pgvector")
        self._index_kind: IndexKind = "exact" if kind == "pgvector" else kind
        self.index: ExactIndex | FaissIndex = make_index(self._index_kind, dim, **opts)
        self._subject_of: dict[int, str] = {}  # face id -> subject key
        self._names: dict[str, str] = {}  # subject key -> name
        self.writer = writer or ThreadPoolExecutor(1, thread_name_prefix="gallery-writer")
        self.dropped = False  # the collection was deleted: nothing is indexed or written any more
        self.created: float | None = None  # the collection's creation time (None: the default)
        self.on_collection: Callable[[], None] | None = None  # told of any collection change it sees
        self._lock = threading.Lock()  # guards the maps and the index against concurrent catch-ups
        self._seq = 0  # the last change-log entry applied
        self.stale: dict[tuple[str, str], int] = {}  # faces of other model versions, found at load
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

    def load(self) -> None:
        """Build the index and the maps from the store (at start, or after falling far behind)."""
        self._seq = self.store.last_change()
        self.stale = {m: n for m, n in self.store.model_counts().items() if m != self.model}
        if self.vectors is not None:  # PostgreSQL keeps face_vectors in step in each write
            log.info("gallery: searched in PostgreSQL (pgvector HNSW), %s", self.model)
            return
        self._names = self.store.names(self.collection)
        ids, vecs, owners = [], [], []
        for fids, sids, emb in self.store.embeddings(self.model, collection=self.collection):
            if emb.shape[1] != self.dim:
                raise Conflict(f"stored embeddings have {emb.shape[1]} values, the model gives {self.dim}")
            ids.append(fids)
            vecs.append(emb)
            owners.extend(sids)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        all_vecs = np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32)
        self._subject_of = dict(zip(all_ids.tolist(), owners, strict=True))
        self.index = make_index(self._index_kind, self.dim, **self.opts)
        if isinstance(self.index, FaissIndex):
            self.index.build(all_ids, all_vecs)
        elif len(all_ids):
            self.index.add(all_ids, all_vecs)
        log.info(
            "gallery %s: %d subjects, %d faces indexed (%s)",
            self.collection,
            len(self._names),
            len(all_ids),
            self.model,
        )

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

    def catch_up(self) -> None:
        """Apply the store's change log since the last entry applied (this process's writes and any
        other process's). Idempotent: a face is re-read and indexed as the store now has it.
        With pgvector there is nothing to apply: the store's own index is the one searched."""
        if self.vectors is not None:
            return
        with self._lock:
            changes = self.store.changes_since(self._seq)
            if not changes:
                return
            if self._seq and changes[0][0] > self._seq + 1 and self.store.oldest_change() > self._seq + 1:
                self.load()  # fell behind the log's pruning: start over
                return
            for kind, ref in dict.fromkeys((k, r) for _, k, r in changes):
                if kind == "collection":
                    if ref == self.collection and self._gone():
                        self.drop()
                    if self.on_collection is not None:
                        self.on_collection()
                elif kind == "subject":
                    if split_key(ref)[0] != self.collection:
                        continue
                    name = self.store.name(ref)
                    if name is None:
                        self._names.pop(ref, None)
                    else:
                        self._names[ref] = name
                else:
                    self._apply_face(int(ref))
            self._seq = changes[-1][0]

    def _gone(self) -> bool:
        """Whether this collection was deleted (or deleted and made anew: another gallery's now)."""
        row = collection_store.collection(self.store, self.collection)
        return row is None or (self.created is not None and row.created != self.created)

    def drop(self) -> None:
        """The collection is gone (deleted by this or another process): forget every face."""
        self.dropped = True
        self.index = make_index(self._index_kind, self.dim, **self.opts)
        self._subject_of, self._names = {}, {}

    def _apply_face(self, fid: int) -> None:
        if fid in self._subject_of:
            self.index.remove([fid])
            del self._subject_of[fid]
        row = self.store.face_vector(fid)
        if row is None or self.dropped or split_key(row[0])[0] != self.collection:
            return
        if row[1] == self.model and row[2].shape == (self.dim,):
            self.index.add(np.array([fid], np.int64), row[2][None, :])
            self._subject_of[fid] = row[0]

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

    # -- search -----------------------------------------------------------------------------

    def check_model(self, model: tuple[str, str] | None = None) -> None:
        if model is not None and model != self.model:
            raise Conflict(
                f"embeddings from model {model[0]}/{model[1]} cannot be searched: the gallery holds "
                f"{self.model[0]}/{self.model[1]} embeddings"
            )
        if self.stale:
            (name, version), n = next(iter(self.stale.items()))
            raise Conflict(
                f"the gallery holds {n} faces embedded with {name}/{version}, not the serving model "
                f"{self.model[0]}/{self.model[1]}: run `facepipe gallery reembed`, then restart"
            )

    def identify(self, queries: np.ndarray, k: int) -> list[list[Match]]:
        """For each query, the ``k`` most similar subjects (best face of each), best first."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInput(f"embeddings must have {self.dim} values each, got shape {queries.shape}")
        attributes = {
            "facepipe.gallery.queries": len(queries),
            "facepipe.gallery.k": k,
            "facepipe.gallery.index": self.kind,
            "facepipe.gallery.collection": self.collection,
        }
        with spans.span("gallery identify", attributes):
            return self._identify(queries, k)

    def _identify(self, queries: np.ndarray, k: int) -> list[list[Match]]:
        if self.store.available():  # else: answer from the index as it is; writes get the 503
            try:
                self.catch_up()  # what other processes changed
            except StoreUnavailable as exc:
                log.debug("identify without catching up: %s", exc)
        if self.vectors is not None:
            return [_best(self.vectors.search(q, k * 4), k) for q in queries]
        scores, ids = self.index.search(queries.astype(np.float32), k * 4)
        with self._lock:
            return [
                _best(
                    (
                        (i, sid, self._names.get(sid, ""), s)
                        for s, i in zip(row_s.tolist(), row_i.tolist(), strict=True)
                        if (sid := self._subject_of.get(i)) is not None
                    ),
                    k,
                )
                for row_s, row_i in zip(scores, ids, strict=True)
            ]

    def faces_count(self) -> int:
        return self.vectors.count() if self.vectors is not None else len(self._subject_of)


def _best(faces: Iterable[tuple[int, str, str, float]], k: int) -> list[Match]:
    """The best face of each subject among ``faces`` (face id, subject, name, similarity; best
    first), the first ``k`` subjects."""
    best: dict[str, Match] = {}
    for fid, key, name, sim in faces:
        if key not in best:
            best[key] = Match(split_key(key)[1], name, sim, fid)
    return list(best.values())[:k]
