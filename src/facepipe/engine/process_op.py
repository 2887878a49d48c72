"""An op in a child process of its own: the seed's ``is_thread_op: false``, for ops that hold the GIL.

The stage's worker thread keeps its place in the engine (batching, deadlines, retries, stats); only the
call crosses into the child: the batch goes down a pipe pickled and the results come back the same
way. The child builds the op from the factory, so the factory must pickle (a module-level function or
``functools.partial`` of one, as ``face.pipelines`` builds them). Children are started with ``spawn``
(never ``fork``: the server has threads). A child that dies fails its batch, which the stage may retry,
and is replaced before the next call.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from facepipe.engine import heap
from facepipe.engine.op import OpFactory
from facepipe.engine.worker import as_worker, worker_index

log = logging.getLogger(__name__)
_READY, _OK, _ERROR = "ready", "ok", "error"


def _child(factory: OpFactory, conn: Connection, index: int) -> None:
    try:
        with as_worker(index):
            op = factory()
            op.setup()
        heap.settle()
    except BaseException as exc:  # reported to the parent, which raises it
        conn.send((_ERROR, _portable(exc)))
        return
    conn.send((_READY, None))
    while (batch := conn.recv()) is not None:
        try:
            conn.send((_OK, op(batch)))
        except Exception as exc:
            conn.send((_ERROR, _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles, else a RuntimeError carrying its text."""
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class ProcessOp:
    """Runs the op made by ``factory`` in a child process; called like the op itself."""

    def __init__(self, factory: OpFactory, name: str = "op") -> None:
        self.factory, self.name = factory, name
        self._conn: Connection | None = None
        self._proc: Any = None

    def setup(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        args = (self.factory, child, worker_index())
        self._proc = ctx.Process(target=_child, args=args, name=f"op-{self.name}", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        status, value = self._receive()
        if status != _READY:
            self.close()
            raise value

    def __call__(self, batch: list[Any]) -> list[Any]:
        if self._conn is None:  # the last call found the child dead
            log.warning("op %s: its process is gone; starting another", self.name)
            self.close()
            self.setup()
        conn = self._conn
        if conn is None:  # pragma: no cover - setup either sets it or raises
            raise RuntimeError(f"op {self.name}: no process")
        try:
            conn.send(batch)
        except OSError:
            self._dead()
        status, value = self._receive()
        if status == _ERROR:
            raise value
        result: list[Any] = value
        return result

    def _receive(self) -> tuple[str, Any]:
        if self._conn is None:
            raise RuntimeError(f"op {self.name}: no process")
        try:
            message: tuple[str, Any] = self._conn.recv()
        except (EOFError, OSError):
            self._dead()
        return message

    def _dead(self) -> NoReturn:
        """The child is gone (its pipe broke): fail this call; the next one starts another child."""
        code = self._proc.exitcode if self._proc is not None else None
        self._conn = None
        raise RuntimeError(f"op {self.name}: its process died (exit code {code})") from None

    def close(self) -> None:
        """Stop the child (it finishes the call in hand first)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()
            self._proc = None
