"""What one process sees of one collection: its search index and subject names, kept in step with
the store's change log (``catch_up``), and the 1:N search over them. ``Gallery`` adds the writes.

pgvector: identify runs in PostgreSQL, and this process holds no vectors nor face map."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from facepipe.errors import ConfigError, Conflict, InvalidInput, StoreUnavailable
from facepipe.gallery import collection_store, spans
from facepipe.gallery.index import ExactIndex, FaissIndex, make_index
from facepipe.gallery.index import Kind as IndexKind
from facepipe.gallery.pgvector import VectorSearch
from facepipe.gallery.records import DEFAULT, split_key
from facepipe.gallery.store import Store

log = logging.getLogger(__name__)
Kind = IndexKind | Literal["pgvector"]


@dataclass(slots=True, frozen=True)
class Match:
    subject_id: str
    name: str
    similarity: float
    face_id: int


class CollectionView:
    def __init__(
        self,
        store: Store,
        model: tuple[str, str],
        dim: int,
        kind: Kind = "exact",
        *,
        collection: str = DEFAULT,
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
        self.dropped = False  # the collection was deleted: nothing is indexed or written any more
        self.created: float | None = None  # the collection's creation time (None: the default)
        self.on_collection: Callable[[], None] | None = None  # told of any collection change it sees
        self._lock = threading.Lock()  # guards the maps and the index against concurrent catch-ups
        self._seq = 0  # the last change-log entry applied
        self.stale: dict[tuple[str, str], int] = {}  # faces of other model versions, found at load

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

    # -- search -----------------------------------------------------------------------------

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
