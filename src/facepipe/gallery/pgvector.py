"""``gallery.index: pgvector``: identify runs in PostgreSQL, on pgvector's HNSW index, and the server
process keeps no vectors (for galleries larger than a node's memory).

The vectors live in ``face_vectors`` (face id, ``vector(dim)``), beside ``faces`` whose ``embedding``
column stays the one source of truth. ``schema.PGVECTOR`` creates it; ``PostgresStore`` applies it at
open only when this index is configured, so SQLite and a PostgreSQL store without pgvector never see
it. Writes keep it in step in their own transaction (``writes.put_vector``); a changed embedding that
was written without it is dropped from ``face_vectors`` by a trigger, and every face missing there is
copied in (binary COPY) at the next open with this index, before the HNSW index is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facepipe.gallery.schema import PGVECTOR, PGVECTOR_INDEX
from facepipe.gallery.store import Store, vector_text

log = logging.getLogger(__name__)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY: signature, flags, no extension
CHUNK = 65536


@dataclass(slots=True, frozen=True)
class VectorOptions:
    """pgvector's HNSW parameters (``gallery.pgvector_*``) for embeddings of ``dim`` values."""

    dim: int
    m: int = 16
    ef_construction: int = 64
    ef_search: int = 200

    def session(self) -> str:
        """libpq ``options`` for every connection: the search breadth of each identify."""
        return f"-c hnsw.ef_search={self.ef_search} -c hnsw.iterative_scan=strict_order"


def _copy_rows(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """(face id, vector) rows in binary COPY form: a bigint and pgvector's binary vector
    (int16 dim, int16 unused, float4 values), all big-endian."""
    dim = vectors.shape[1]
    row = np.dtype(
        [
            ("n", ">i2"),
            ("l1", ">i4"),
            ("id", ">i8"),
            ("l2", ">i4"),
            ("dim", ">i2"),
            ("u", ">i2"),
            ("v", ">f4", (dim,)),
        ]
    )
    out = np.zeros(len(ids), row)
    out["n"], out["l1"], out["id"], out["l2"], out["dim"], out["v"] = 2, 8, ids, 4 + 4 * dim, dim, vectors
    return out.tobytes()


def table_dim(db: Any) -> int | None:
    """The dimension of ``face_vectors`` if the table exists (a store opened without this index
    then still keeps it in step)."""
    row = db.execute(
        b"SELECT atttypmod FROM pg_attribute"
        b" WHERE attrelid = to_regclass('face_vectors') AND attname = 'embedding'"
    ).fetchone()
    return None if row is None else int(row[0])


def prepare(db: Any, opts: VectorOptions) -> None:
    """Create ``face_vectors`` (recreated if its dimension differs), copy in every face missing
    there, then build the HNSW index if there is none. ``db``: a psycopg connection inside the
    migration's transaction (under the write lock: another server's writes wait meanwhile)."""
    dim = table_dim(db)
    if dim is not None and dim != opts.dim:
        log.warning(
            "gallery: face_vectors holds vector(%d), the model gives %d: rebuilding it", dim, opts.dim
        )
        db.execute(b"DROP TABLE face_vectors")
    for statement in PGVECTOR:
        db.execute(statement.format(dim=opts.dim).encode())
    t, n = time.perf_counter(), _backfill(db, opts.dim)
    if n:
        log.info("gallery: %d faces copied into face_vectors in %.1f s", n, time.perf_counter() - t)
    if db.execute(b"SELECT to_regclass('face_vectors_hnsw')").fetchone()[0] is None:
        total = int(db.execute(b"SELECT count(*) FROM face_vectors").fetchone()[0])
        # the graph is built in memory: past maintenance_work_mem the build slows down many times
        mb = max(64, int(total * (4 * opts.dim + 80 * opts.m) / 2**20) + 64)
        db.execute(f"SET LOCAL maintenance_work_mem = '{mb}MB'".encode())
        t = time.perf_counter()
        db.execute(PGVECTOR_INDEX.format(m=opts.m, ef_construction=opts.ef_construction).encode())
        log.info("gallery: HNSW index over %d faces built in %.1f s", total, time.perf_counter() - t)


def _backfill(db: Any, dim: int) -> int:
    """Copy the embeddings of ``dim`` values missing from ``face_vectors`` into it; how many."""
    after, done = 0, 0
    while rows := db.execute(
        b"SELECT f.id, f.embedding FROM faces f WHERE f.id > %s AND length(f.embedding) = %s"
        b" AND NOT EXISTS (SELECT 1 FROM face_vectors v WHERE v.face_id = f.id) ORDER BY f.id LIMIT %s",
        (after, 4 * dim, CHUNK),
    ).fetchall():
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vecs = np.frombuffer(b"".join(bytes(r[1]) for r in rows), np.float32).reshape(len(rows), dim)
        with db.cursor().copy(b"COPY face_vectors (face_id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(COPY_HEADER + _copy_rows(ids, vecs) + b"\xff\xff")
        after, done = int(ids[-1]), done + len(rows)
    return done


# The collection's faces only: with pgvector >= 0.8's iterative index scans (strict order, set for
# every connection by VectorOptions.session) the HNSW scan goes on until LIMIT faces pass the filter.
SEARCH = (
    "SELECT c.face_id, c.subject_id, c.name, c.sim FROM ("
    " SELECT v.face_id, f.subject_id, s.name, (v.embedding <#> ?::vector) * -1 AS sim FROM face_vectors v"
    " JOIN faces f ON f.id = v.face_id JOIN subjects s ON s.id = f.subject_id WHERE s.collection = ?"
    " ORDER BY v.embedding <#> ?::vector LIMIT ?) c ORDER BY c.sim DESC, c.face_id"
)
COUNT = (
    "SELECT count(*) FROM face_vectors v JOIN faces f ON f.id = v.face_id"
    " JOIN subjects s ON s.id = f.subject_id WHERE s.collection = ?"
)


class VectorSearch:
    """Nearest faces by inner product, one HNSW query per embedding, with their subject and name."""

    def __init__(self, store: Store, collection: str) -> None:
        self.store, self.collection = store, collection

    def search(self, query: np.ndarray, n: int) -> Sequence[tuple[int, str, str, float]]:
        """Up to ``n`` (face id, subject key, name, similarity) of the collection nearest to ``query``,
        best first."""
        text = vector_text(query)
        return [
            (int(f), str(s), str(name), float(sim))
            for f, s, name, sim in self.store.rows(SEARCH, (text, self.collection, text, n))
        ]

    def count(self) -> int:
        return int(self.store.rows(COUNT, (self.collection,))[0][0])
