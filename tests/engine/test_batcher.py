from __future__ import annotations

import queue
import threading
import time

import pytest

from facepipe.engine.batcher import Batcher


def test_takes_what_is_queued_up_to_max_batch() -> None:
    b: Batcher[int] = Batcher(max_batch_size=4, max_wait_s=0.0, capacity=10)
    for i in range(6):
        b.put_nowait(i)
    assert b.take() == [0, 1, 2, 3]
    assert b.take() == [4, 5]


def test_waits_at_most_max_wait_for_more() -> None:
    b: Batcher[int] = Batcher(max_batch_size=8, max_wait_s=0.05, capacity=10)
    b.put_nowait(1)
    t0 = time.monotonic()
    assert b.take() == [1]
    assert 0.04 <= time.monotonic() - t0 < 0.5


def test_late_items_join_within_the_wait() -> None:
    b: Batcher[int] = Batcher(max_batch_size=3, max_wait_s=1.0, capacity=10)
    b.put_nowait(1)
    threading.Timer(0.02, b.put_nowait, args=(2,)).start()
    threading.Timer(0.04, b.put_nowait, args=(3,)).start()
    t0 = time.monotonic()
    assert b.take() == [1, 2, 3]
    assert time.monotonic() - t0 < 0.5  # full batch returns before the wait ends


def test_bounded() -> None:
    b: Batcher[int] = Batcher(max_batch_size=1, max_wait_s=0, capacity=2)
    b.put_nowait(1)
    b.put_nowait(2)
    with pytest.raises(queue.Full):
        b.put_nowait(3)


def test_close_stops_takers() -> None:
    b: Batcher[int] = Batcher(max_batch_size=4, max_wait_s=1.0, capacity=10)
    b.put_nowait(7)
    b.close(1)
    assert b.take() == [7]
    assert b.take() is None


def test_rejects_zero_batch() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(0, 0, 1)


def test_a_worker_leaves_idle_workers_their_share() -> None:
    b: Batcher[int] = Batcher(max_batch_size=8, max_wait_s=0, capacity=16)
    for i in range(4):
        b.put_nowait(i)
    assert b.take() == [0, 1, 2, 3]  # nobody else idle: all of it
    for i in range(4):
        b.put_nowait(i)
    b._idle = 1  # another worker is waiting for work
    assert b.take() == [0, 1]  # half of what is queued; the other half is left for it


def test_the_last_worker_to_go_idle_is_woken_first() -> None:
    b: Batcher[str] = Batcher(max_batch_size=1, max_wait_s=0, capacity=4)
    got: dict[str, list[str] | None] = {}

    def worker(name: str) -> None:
        got[name] = b.take()

    first = threading.Thread(target=worker, args=("first",))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=worker, args=("second",))
    second.start()
    time.sleep(0.05)
    b.put_nowait("job")
    second.join(timeout=2)
    assert got == {"second": ["job"]}  # warm caches: the most recently idle worker runs it
    b.close(1)
    first.join(timeout=2)
    assert got["first"] is None


def test_put_waits_for_room_then_gives_up() -> None:
    b: Batcher[int] = Batcher(max_batch_size=1, max_wait_s=0, capacity=1)
    b.put(1, timeout=0.1)
    threading.Timer(0.05, b.take).start()
    b.put(2, timeout=2)  # room made by the take
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        b.put(3, timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
