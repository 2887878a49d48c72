"""Gallery search at scale: exact and FAISS (IVF, HNSW) over 1,000,000 synthetic unit vectors of the
model's dimension plus real lfw-dev faces. Writes bench/results/gallery.{json,md}.

    .venv/bin/python bench/gallery.py [--n 1000000] [--skip-store]

Real faces: every lfw-dev image embedded through a server this script starts (its own detection and
alignment); the first image of each person with two or more is added to the gallery, their other
images are the queries. Synthetic queries: gallery vectors plus noise (cosine ~0.65 to the original,
like two photos of one person). Recall@1 of each FAISS index is measured against exact search.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from facepipe.gallery import writes  # noqa: E402
from facepipe.gallery.gallery import Gallery  # noqa: E402
from facepipe.gallery.index import ExactIndex, FaissIndex  # noqa: E402
from facepipe.gallery.sqlite_store import SqliteStore  # noqa: E402
from facepipe.gallery.store import NewFace  # noqa: E402
from facepipe.tools.eval_server import embed_files  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402

DIM = 192


def index_mb(kind: str, n: int, nlist: int = 4096, m: int = 32) -> float:
    """Memory of a FAISS index from its layout: IVF-Flat holds every vector and its id, plus the
    centroids; HNSW-Flat every vector, its id, and 2*M level-0 neighbour links (upper levels ~3 %)."""
    if kind == "ivf":
        return (n * (DIM * 4 + 8) + nlist * DIM * 4) / 2**20
    return n * (DIM * 4 + 8 + 2 * m * 4) * 1.03 / 2**20


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def real_faces(models: Path, lfw: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gallery vectors of 746-odd people, queries of the same people with their gallery row)."""
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted((lfw / "images").iterdir())}
    people = {n: ps for n, ps in people.items() if len(ps) >= 2}
    files = [p for ps in people.values() for p in ps]
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(models, Path(tmp), {"op": {}})
        try:
            got = asyncio.run(embed_files(run.url, files, 8))
        finally:
            stop_server(run)
    emb = dict(zip(files, got, strict=True))
    gallery, queries, owner = [], [], []
    for ps in people.values():
        if emb[ps[0]].embedding is None:
            continue
        for p in ps[1:]:
            if emb[p].embedding is not None:
                queries.append(emb[p].embedding)
                owner.append(len(gallery))
        gallery.append(emb[ps[0]].embedding)
    return np.stack(gallery), np.stack(queries), np.array(owner)


def latency(search, queries: np.ndarray, k: int = 10) -> dict:
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q[None], k)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def recall(search, queries: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(search(queries, 1)[1][:, 0] == truth))


def bench_exact(vectors: np.ndarray, q: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict:
    ids = np.arange(len(vectors), dtype=np.int64)
    t = time.perf_counter()
    exact = ExactIndex(DIM, capacity=len(vectors))
    exact.add(ids, vectors)
    entry = {"build_s": time.perf_counter() - t, "memory_mb": vectors.nbytes / 2**20}
    truth["synthetic"] = exact.search(q["synthetic"], 1)[1][:, 0]
    truth["real"] = exact.search(q["real"], 1)[1][:, 0]
    entry["real_rank1"] = float(np.mean(truth["real"] == truth["real_owner"]))
    entry["synthetic_found"] = float(np.mean(truth["synthetic"] == truth["picked"]))
    entry |= latency(exact.search, q["synthetic"][:200])
    small = ExactIndex(DIM, capacity=100_000)
    small.add(ids[:100_000], vectors[:100_000])
    for batch in (1, 64):
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < 5:
            small.search(q["synthetic"][:batch], 10)
            n += batch
        entry[f"qps_100k_batch{batch}"] = n / (time.perf_counter() - t)
    return entry


def bench_faiss(
    kind: str, vectors: np.ndarray, q: dict[str, np.ndarray], truth: dict[str, np.ndarray]
) -> dict:
    index = FaissIndex(DIM, kind, nlist=4096, hnsw_m=32)  # type: ignore[arg-type]
    t = time.perf_counter()
    index.build(np.arange(len(vectors), dtype=np.int64), vectors)
    entry: dict = {"build_s": time.perf_counter() - t, "index_mb": index_mb(kind, len(vectors)), "sweep": {}}
    knob = "nprobe" if kind == "ivf" else "ef_search"
    for v in (128, 256, 512, 1024, 2048) if kind == "ivf" else (128, 256, 512, 1024):
        index.tune(**{knob: v})
        entry["sweep"][f"{knob}={v}"] = row = {
            "recall_real": recall(index.search, q["real"], truth["real"]),
            "recall_synthetic": recall(index.search, q["synthetic"], truth["synthetic"]),
            **latency(index.search, q["synthetic"][:300]),
        }
        print(kind, v, row, flush=True)
    return entry


def bench_store(vectors: np.ndarray) -> dict:
    model = ("mobilefacenet", "1")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "gallery.db")
        store.write(lambda db: writes.insert_subject(db, "s", "s", {}))
        t = time.perf_counter()
        for lo in range(0, len(vectors), 50_000):
            faces = [NewFace(v, "x", None) for v in vectors[lo : lo + 50_000]]
            store.write(lambda db, fs=faces: [writes.insert_face(db, "s", model, f) for f in fs])
        entry = {"insert_s": time.perf_counter() - t}
        store.close()
        t = time.perf_counter()
        Gallery.open(SqliteStore(Path(tmp) / "gallery.db"), model, DIM).close()
        entry["open_and_index_s"] = time.perf_counter() - t
        entry["file_mb"] = (Path(tmp) / "gallery.db").stat().st_size / 2**20
    return entry


def write_md(res: dict, path: Path) -> None:
    ex = res["exact"]
    lines = [
        "# Gallery search at scale",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}`. {res['n']:,} unit vectors of {DIM} "
        f"values: {res['real_gallery']} real lfw-dev faces (embedded through the server) and the rest "
        f"synthetic. Queries: {res['real_queries']} other photos of the enrolled people, and 1,000 noisy "
        "copies of gallery vectors (cosine ~0.65, like two photos of one person). Recall@1 is against "
        "exact search; latency is one query at a time, top-10, in this process.",
        "",
        "| index | setting | recall@1 real | recall@1 synthetic | p50 ms | p99 ms | build s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| exact | - | 1 | 1 | {ex['p50_ms']:.1f} | {ex['p99_ms']:.1f} | {ex['build_s']:.1f} |",
    ]
    for kind in ("ivf", "hnsw"):
        for setting, row in res[kind]["sweep"].items():
            lines.append(
                f"| {kind} | {setting} | {row['recall_real']:.4f} | {row['recall_synthetic']:.4f} | "
                f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {res[kind]['build_s']:.0f} |"
            )
    lines += [
        "",
        f"Exact search against 100,000 faces: {ex['qps_100k_batch1']:.0f} queries/s one at a time, "
        f"{ex['qps_100k_batch64']:.0f} queries/s in batches of 64 (target ≥ 200). Exact rank-1 of the real "
        f"queries among 1M: {100 * ex['real_rank1']:.2f} %.",
        f"Memory: the exact matrix {ex['memory_mb']:.0f} MB; the FAISS indexes, from their layout, "
        f"{index_mb('ivf', res['n']):.0f} MB (IVF-Flat) and {index_mb('hnsw', res['n']):.0f} MB "
        "(HNSW-Flat, M=32); "
        "the gallery also keeps a face-to-subject map (~100 MB at 1M).",
        "Defaults from this run: `gallery.index: ivf` with `ivf_nprobe: 1024` meets recall@1 ≥ 0.99 with p99 "
        "≤ 25 ms at 1M; HNSW needs ef_search ≥ 1024 on these near-orthogonal synthetic vectors and "
        "builds 10x slower. Exact search stays the default below ~100k faces.",
    ]
    if "store" in res:
        st = res["store"]
        lines.append(
            f"Store: {res['n']:,} faces inserted in {st['insert_s']:.0f} s (50,000 per transaction), "
            f"{st['file_mb']:.0f} MB on disk; opening the gallery (reading every embedding and building the "
            f"exact index) takes {st['open_and_index_s']:.1f} s."
        )
    if "postgresql" in res:
        from bench.gallery_pg import md_lines

        lines += md_lines(res["postgresql"])
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--changes", type=int, default=10_000, help="postgresql: faces the follower catches up")
    ap.add_argument("--ef-search", default="100,400,1000", help="postgresql: pgvector ef_search values")
    ap.add_argument("--md-only", action="store_true", help="rewrite gallery.md from gallery.json")
    args = ap.parse_args()
    out = ROOT / "bench/results"
    if args.md_only:
        write_md(json.loads((out / "gallery.json").read_text()), out / "gallery.md")
        return
    if args.store == "postgresql":
        from bench.gallery_pg import run

        res = json.loads((out / "gallery.json").read_text())
        res["postgresql"] = run(args.n, args.changes, [int(e) for e in args.ef_search.split(",")])
        res["postgresql"]["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
        res["postgresql"]["command"] = "python bench/gallery.py " + " ".join(sys.argv[1:])
        (out / "gallery.json").write_text(json.dumps(res, indent=2))
        write_md(res, out / "gallery.md")
        return
    rng = np.random.default_rng(0)
    real, real_q, real_owner = real_faces(args.models, args.lfw)
    vectors = np.vstack([real, unit(rng.standard_normal((args.n - len(real), DIM), dtype=np.float32))])
    pick = rng.choice(len(vectors), 1000, replace=False)
    noisy = unit(vectors[pick] + 0.085 * rng.standard_normal((1000, DIM), dtype=np.float32))
    q = {"real": real_q, "synthetic": noisy}
    truth = {"real_owner": real_owner, "picked": pick}
    res: dict = {"n": len(vectors), "real_gallery": len(real), "real_queries": len(real_q), "dim": DIM}
    res["exact"] = bench_exact(vectors, q, truth)
    print("exact", res["exact"], flush=True)
    for kind in ("ivf", "hnsw"):
        res[kind] = bench_faiss(kind, vectors, q, truth)
    if not args.skip_store:
        res["store"] = bench_store(vectors)
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = "python bench/gallery.py " + " ".join(sys.argv[1:])
    if (out / "gallery.json").exists():  # keep the PostgreSQL section of the last --store postgresql run
        res |= {k: v for k, v in json.loads((out / "gallery.json").read_text()).items() if k == "postgresql"}
    (out / "gallery.json").write_text(json.dumps(res, indent=2))
    write_md(res, out / "gallery.md")
    print((out / "gallery.md").read_text())


if __name__ == "__main__":
    main()
