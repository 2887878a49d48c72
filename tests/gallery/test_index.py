"""Exact and FAISS indexes: correct neighbours, removals, merges, searches during writes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from facepipe.gallery.index import ExactIndex, FaissIndex, top_k

DIM = 64


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def noisy(rng: np.random.Generator, x: np.ndarray, sigma: float = 0.05) -> np.ndarray:
    q = x + sigma * rng.standard_normal(x.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_top_k_orders_and_pads() -> None:
    scores = np.array([[0.1, 0.9, 0.5]], np.float32)
    s, i = top_k(scores, 5)
    assert i.tolist() == [[1, 2, 0, -1, -1]]
    assert s[0, 3] == -np.inf


def test_exact_matches_brute_force_and_forgets_removed() -> None:
    rng = np.random.default_rng(1)
    x = unit(rng, 500)
    index = ExactIndex(DIM, capacity=16)  # grows several times
    index.add(np.arange(100, 600), x)
    q = unit(rng, 20)
    s, i = index.search(q, 5)
    brute = np.argsort(-(q @ x.T), axis=1)[:, :5] + 100
    assert (i == brute).all()
    assert np.allclose(s, np.take_along_axis(q @ x.T, brute - 100, 1), atol=1e-5)
    index.remove(brute[:, 0].tolist())
    _, i2 = index.search(q, 1)
    assert (i2[:, 0] == brute[:, 1]).all() or not set(i2[:, 0]) & set(brute[:, 0])
    assert len(index) == 500 - len(set(brute[:, 0].tolist()))


def test_exact_compacts_after_many_removals() -> None:
    rng = np.random.default_rng(2)
    x = unit(rng, 3000)
    index = ExactIndex(DIM)
    index.add(np.arange(3000), x)
    index.remove(range(2000))
    assert len(index) == 1000
    ids, _ = index.live()
    assert sorted(ids.tolist()) == list(range(2000, 3000))
    _, i = index.search(x[2500:2501], 1)
    assert i[0, 0] == 2500


def test_empty_index_returns_no_neighbours() -> None:
    s, i = ExactIndex(DIM).search(np.ones((2, DIM), np.float32), 3)
    assert (i == -1).all() and np.isneginf(s).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_faiss_finds_noisy_copies_through_merges_and_removals(kind: str) -> None:
    rng = np.random.default_rng(3)
    x = unit(rng, 6000)
    index = FaissIndex(DIM, kind, nlist=32, nprobe=16, merge_every=1000)  # type: ignore[arg-type]
    index.build(np.arange(4000), x[:4000])
    index.add(np.arange(4000, 6000), x[4000:])  # passes merge_every: a background merge
    index.wait_merged()
    removed = [10, 4010, 5999]
    index.remove(removed)
    probe = np.array([10, 11, 4010, 4011, 5998, 5999])
    _, ids = index.search(noisy(rng, x[probe]), 3)
    top = ids[:, 0].tolist()
    assert top[1] == 11 and top[3] == 4011 and top[4] == 5998
    assert not set(ids.ravel().tolist()) & set(removed)
    probe = np.arange(100, 600)
    recall = (index.search(noisy(rng, x[probe]), 1)[1][:, 0] == probe).mean()
    assert recall >= 0.99


def test_faiss_without_a_main_index_searches_the_delta() -> None:
    rng = np.random.default_rng(4)
    x = unit(rng, 50)
    index = FaissIndex(DIM, "ivf", merge_every=10_000)
    index.add(np.arange(50), x)
    assert index.search(x[7:8], 1)[1][0, 0] == 7


def test_searches_run_while_writes_happen() -> None:
    rng = np.random.default_rng(5)
    x = unit(rng, 4000)
    index = ExactIndex(DIM, capacity=8)
    index.add(np.arange(100), x[:100])
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                s, i = index.search(x[:4], 4)
                assert (i[:, 0] == np.arange(4)).all()  # always present, never removed
                assert (np.diff(s, axis=1) <= 1e-6).all()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    for start in range(100, 4000, 50):
        index.add(np.arange(start, start + 50), x[start : start + 50])
        index.remove(range(start - 40, start - 30))
    stop.set()
    for t in threads:
        t.join()
    assert not errors
