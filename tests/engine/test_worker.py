"""Each worker of a stage knows its index while its op is built and set up, in a thread or in a
process op's child: what spreads an op's workers over the GPUs of ``devices``."""

from __future__ import annotations

import os
import threading
from typing import Any

from facepipe.engine import worker_index
from facepipe.engine.process_op import ProcessOp
from facepipe.engine.stage import Stage, StageConfig
from facepipe.engine.worker import as_worker


class _Records:
    """An op that remembers the worker index it was set up as; answers it for every item."""

    seen: list[int] = []
    lock = threading.Lock()

    def setup(self) -> None:
        self.index = worker_index()
        with self.lock:
            self.seen.append(self.index)

    def __call__(self, batch: list[Any]) -> list[Any]:
        return [(self.index, os.getpid()) for _ in batch]


def test_each_thread_worker_is_set_up_with_its_own_index() -> None:
    _Records.seen = []
    stage = Stage(StageConfig("rec", concurrency=4), _Records, lambda *a: None)
    stage.start()
    try:
        assert sorted(_Records.seen) == [0, 1, 2, 3]
    finally:
        stage.stop()
    assert worker_index() == 0  # outside a worker


def test_a_process_op_child_is_set_up_as_its_worker() -> None:
    with as_worker(3):
        op = ProcessOp(_Records, "rec")
        op.setup()
    try:
        index, pid = op([None])[0]
        assert index == 3 and pid != os.getpid()
    finally:
        op.close()


def test_as_worker_restores_the_previous_index() -> None:
    with as_worker(2):
        with as_worker(5):
            assert worker_index() == 5
        assert worker_index() == 2
    assert worker_index() == 0
