"""What erasure costs a delete: one face deleted from a gallery of N faces with 25 kB crops, on SQLite
(secure_delete + WAL checkpoint) and on PostgreSQL with ``pg_erase: vacuum`` and ``vacuum_full``.
Writes bench/results/gallery-erase.{json,md}.

    .venv/bin/python bench/gallery_erase.py [--n 5000]

PostgreSQL is started the way the tests start it (tests/pg_server.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facepipe.gallery import writes
from facepipe.gallery.pg_store import PostgresStore
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.gallery.store import NewFace, Store
from tests.pg_server import PgServer

OUT = Path(__file__).parent / "results"
MODEL = ("m", "1")


def deletes_ms(store: Store, faces: list[NewFace]) -> list[float]:
    """Fill ``store`` with ``faces``, then time three single-face deletes (ms)."""
    store.write(lambda tx: writes.insert_subject(tx, "s", "S", {}))
    for lo in range(0, len(faces), 500):
        store.write(lambda tx, fs=faces[lo : lo + 500]: [writes.insert_face(tx, "s", MODEL, f) for f in fs])
    out = []
    for fid in (10, 20, 30):
        t = time.perf_counter()
        store.write(lambda tx, fid=fid: writes.delete_face(tx, fid))
        out.append(round((time.perf_counter() - t) * 1000, 1))
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    rng = np.random.default_rng(0)
    faces = [
        NewFace(rng.standard_normal(192).astype(np.float32), f"s{i}", rng.bytes(25_000)) for i in range(n)
    ]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows["sqlite (secure_delete + wal_checkpoint)"] = deletes_ms(SqliteStore(Path(tmp) / "g.db"), faces)
    pg = PgServer()
    pg.start()
    try:
        rows["postgresql, pg_erase: vacuum"] = deletes_ms(PostgresStore(pg.new_database()), faces)
        rows["postgresql, pg_erase: vacuum_full"] = deletes_ms(
            PostgresStore(pg.new_database(), full_vacuum=True), faces
        )
    finally:
        pg.stop("immediate")
        pg.remove()
    OUT.joinpath("gallery-erase.json").write_text(json.dumps({"faces": n, "delete_ms": rows}, indent=1))
    lines = [
        f"# Delete latency with erasure ({n} faces, 25 kB crops, 3 single-face deletes)",
        "",
        "`.venv/bin/python bench/gallery_erase.py`",
        "",
        "| store | delete ms (3 runs) |",
        "|---|---|",
        *(f"| {k} | {', '.join(str(v) for v in ms)} |" for k, ms in rows.items()),
    ]
    OUT.joinpath("gallery-erase.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
