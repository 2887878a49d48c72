"""Nearest-neighbour search over the gallery's unit embeddings (inner product = cosine similarity).

Writers (add, remove) are serialised by the caller; searches run concurrently with them and never
wait: each search reads one immutable *view* published by the last write.

- ``ExactIndex``: a float32 matrix searched by one matrix product per batch of queries. Appends write
  rows past the published row count; removals are tombstones (id -1, row zeroed), compacted away when
  they pass a quarter of the rows.
- ``FaissIndex``: a FAISS IVF-Flat or HNSW-Flat *main* index, never mutated once published, plus an
  exact *delta* for recent additions and a tombstone selector for removals. When the delta grows past
  ``merge_every`` a background thread copies the main index, adds the delta (IVF: and drops the
  tombstoned ids) and publishes the copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)
Kind = Literal["exact", "ivf", "hnsw"]


class Index(Protocol):
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: Iterable[int]) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k), best first; missing neighbours are id -1, score -inf."""
        ...


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of ``scores`` (n, m), best first, and their columns (-1: none)."""
    n, m = scores.shape
    cols = np.broadcast_to(np.arange(m), (n, m))
    if m > k:
        cols = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores = np.take_along_axis(scores, cols, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, cols = np.take_along_axis(scores, order, 1), np.take_along_axis(cols, order, 1)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.hstack([scores, np.full((n, pad), -np.inf, np.float32)])
        cols = np.hstack([cols, np.full((n, pad), -1, np.int64)])
    return scores, np.where(np.isfinite(scores), cols, -1)


def _ids_of(ids: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Map top-k columns to ids (``ids`` per column, or per row and column); -1 stays -1."""
    if ids.size == 0:
        return np.full(cols.shape, -1, np.int64)
    safe = np.maximum(cols, 0)
    picked = ids[safe] if ids.ndim == 1 else np.take_along_axis(ids, safe, 1)
    return np.where(cols >= 0, picked, -1)


@dataclass(frozen=True, slots=True)
class _Rows:
    matrix: np.ndarray  # (capacity, dim)
    ids: np.ndarray  # (capacity,), -1 for free or removed rows
    n: int  # rows in use (live or tombstoned)


class ExactIndex:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._rows = _Rows(np.zeros((capacity, dim), np.float32), np.full(capacity, -1, np.int64), 0)
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._row_of)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        r, m = self._rows, len(ids)
        if r.n + m > len(r.ids):
            r = self._compacted(max(2 * len(r.ids), r.n + m))
        r.matrix[r.n : r.n + m] = vectors
        r.ids[r.n : r.n + m] = ids
        self._row_of.update((int(i), r.n + j) for j, i in enumerate(ids))
        self._rows = _Rows(r.matrix, r.ids, r.n + m)

    def remove(self, ids: Iterable[int]) -> None:
        r = self._rows
        for i in ids:
            row = self._row_of.pop(int(i), None)
            if row is not None:
                r.ids[row] = -1  # first the id: a search that still scores the row drops it
                r.matrix[row] = 0
        if r.n - len(self._row_of) > max(1024, r.n // 4):
            self._rows = self._compacted(len(r.ids))

    def _compacted(self, capacity: int) -> _Rows:
        r = self._rows
        live = np.flatnonzero(r.ids[: r.n] >= 0)
        matrix = np.zeros((capacity, self.dim), np.float32)
        ids = np.full(capacity, -1, np.int64)
        matrix[: len(live)], ids[: len(live)] = r.matrix[live], r.ids[live]
        self._row_of = {int(i): j for j, i in enumerate(ids[: len(live)])}
        return _Rows(matrix, ids, len(live))

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live row, copied."""
        r = self._rows
        keep = np.flatnonzero(r.ids[: r.n] >= 0)
        return r.ids[keep].copy(), r.matrix[keep].copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        r = self._rows
        live = r.ids[: r.n]
        dead = live < 0
        step = max(1, (1 << 24) // max(1, r.n))  # at most 64 MB of scores at a time
        parts_s, parts_i = [], []
        for lo in range(0, len(queries), step):
            scores = queries[lo : lo + step] @ r.matrix[: r.n].T
            if dead.any():
                scores[:, dead] = -np.inf
            s, cols = top_k(scores.astype(np.float32, copy=False), k)
            ids = _ids_of(live, cols)  # a row removed since it was scored reads -1 here: dropped
            parts_s.append(np.where(ids >= 0, s, -np.inf).astype(np.float32))
            parts_i.append(ids)
        if not parts_s:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.vstack(parts_s), np.vstack(parts_i)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise RuntimeError("the FAISS index needs the faiss-cpu package") from exc
    return faiss


@dataclass(frozen=True, slots=True)
class _View:
    main: Any  # faiss.IndexIDMap2 or None
    delta: ExactIndex
    params: tuple[Any, ...]  # (faiss SearchParameters, objects its tombstone selector points to)


class FaissIndex:
    def __init__(
        self,
        dim: int,
        kind: Literal["ivf", "hnsw"] = "ivf",
        nlist: int = 4096,
        nprobe: int = 64,
        hnsw_m: int = 32,
        ef_search: int = 128,
        merge_every: int = 4096,
    ) -> None:
        self.dim, self.kind, self.nlist, self.nprobe = dim, kind, nlist, nprobe
        self.hnsw_m, self.ef_search, self.merge_every = hnsw_m, ef_search, merge_every
        self._view = _View(None, ExactIndex(dim), ())
        self._dead: set[int] = set()
        self._lock = threading.Lock()  # writers and the merge's publish step
        self._merging: threading.Thread | None = None

    def _new_main(self, vectors: np.ndarray) -> Any:
        faiss = _faiss()
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 2 * self.hnsw_m
        else:
            nlist = max(1, min(self.nlist, len(vectors) // 39))
            quantizer = faiss.IndexFlatIP(self.dim)
            inner = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: nlist * 64]]
            inner.train(np.ascontiguousarray(sample))
        return faiss.IndexIDMap2(inner)

    def _params(self) -> tuple[Any, ...]:
        """Search parameters, with the tombstones as a selector; the tuple keeps the selector alive."""
        faiss = _faiss()
        keep: tuple[Any, ...] = ()
        sel = None
        if self._dead:
            batch = faiss.IDSelectorBatch(np.fromiter(self._dead, np.int64))
            sel = faiss.IDSelectorNot(batch)
            keep = (batch, sel)
        if self.kind == "hnsw":
            return (faiss.SearchParametersHNSW(efSearch=self.ef_search, sel=sel), *keep)
        return (faiss.SearchParametersIVF(nprobe=self.nprobe, sel=sel), *keep)

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace everything with ``ids``/``vectors`` (at start, from the store)."""
        main = None
        if len(ids):
            main = self._new_main(vectors)
            main.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids.astype(np.int64))
        with self._lock:
            self._dead = set()
            self._view = _View(main, ExactIndex(self.dim), self._params())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._view.delta.add(ids, vectors)
            due = len(self._view.delta) >= self.merge_every and self._merging is None
            if due:
                self._merging = threading.Thread(target=self._merge, name="faiss-merge", daemon=True)
                self._merging.start()

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            ids = list(ids)
            self._view.delta.remove(ids)
            self._dead.update(int(i) for i in ids)
            self._view = _View(self._view.main, self._view.delta, self._params())

    def tune(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search breadth (IVF lists probed, HNSW candidates) for the searches to come."""
        with self._lock:
            self.nprobe = nprobe or self.nprobe
            self.ef_search = ef_search or self.ef_search
            self._view = _View(self._view.main, self._view.delta, self._params())

    def wait_merged(self) -> None:
        t = self._merging
        if t is not None:
            t.join()

    def _merge(self) -> None:
        try:
            faiss = _faiss()
            view = self._view
            ids, vecs = view.delta.live()
            dead = np.fromiter(self._dead, np.int64)
            if view.main is None:
                main = self._new_main(vecs)
            else:
                main = faiss.clone_index(view.main)
                if self.kind == "ivf" and len(dead):
                    main.remove_ids(faiss.IDSelectorBatch(dead))
            main.add_with_ids(vecs, ids)
            with self._lock:
                delta = ExactIndex(self.dim)
                rest_ids, rest = self._view.delta.live()
                fresh = ~np.isin(rest_ids, ids)
                delta.add(rest_ids[fresh], rest[fresh])
                if self.kind == "ivf":  # physically gone from the copy; removals since stay tombstoned
                    self._dead -= set(dead.tolist())
                self._view = _View(main, delta, self._params())
            log.info("FAISS %s index merged: %d vectors in the main index", self.kind, main.ntotal)
        except Exception:
            log.exception("FAISS merge failed; recent faces stay in the exact delta")
        finally:
            self._merging = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        view = self._view
        q = np.ascontiguousarray(queries, np.float32)
        s2, i2 = view.delta.search(q, k)
        if view.main is None:
            return s2, i2
        s1, i1 = view.main.search(q, k, params=view.params[0])
        s1 = np.where(i1 >= 0, s1, -np.inf).astype(np.float32)
        s, cols = top_k(np.hstack([s1, s2]), k)
        return s, _ids_of(np.hstack([i1, i2]), cols)


def make_index(kind: Kind, dim: int, **options: Any) -> ExactIndex | FaissIndex:
    return ExactIndex(dim) if kind == "exact" else FaissIndex(dim, kind, **options)
