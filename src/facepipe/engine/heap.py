"""The cyclic garbage collector and a server's long-lived objects.

Python's full collection walks every tracked object; with PyTorch, onnxruntime and the models loaded
that is ~200k objects and ~70 ms with the GIL held, paid by whichever requests are in flight when it
comes (it comes every few seconds under load: the tail of the latency). What a server builds before
it turns ready lives as long as the process, so it is moved out of the collector's sight (``settle``);
what is dropped later (a retired model version) is reclaimed once, off the request path (``reclaim``).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle() -> None:
    """Collect what is garbage now, then exempt every live object from later collections."""
    gc.collect()
    gc.freeze()
    log.debug("%d long-lived objects exempted from the cyclic collector", gc.get_freeze_count())


def reclaim() -> None:
    """After long-lived objects were dropped: let one collection see them all again, then settle.
    Before the first ``settle`` nothing is exempt, and the settle at start-up covers all: no-op."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    settle()
