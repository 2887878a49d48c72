import gc
import weakref
from collections.abc import Iterator

import pytest

from facepipe.engine import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settle_exempts_what_lives_now_and_collects_garbage_first() -> None:
    garbage = weakref.ref(Node())
    kept = Node()
    heap.settle()
    assert garbage() is None
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # frozen objects are not walked


def test_a_settled_cycle_dropped_later_waits_for_reclaim() -> None:
    node = Node()
    ref = weakref.ref(node)
    heap.settle()
    del node
    gc.collect()
    assert ref() is not None  # exempt: a collection does not walk it
    heap.reclaim()
    assert ref() is None
    assert gc.get_freeze_count() > 0  # what still lives is settled again
