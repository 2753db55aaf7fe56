"""Group commit: writes that arrive while another is committing share the next transaction.

A durable commit (an fsync on SQLite, a WAL flush on PostgreSQL) costs more than the statements
of a typical registry write, and the writes to one model are serialized anyway (a row lock on
PostgreSQL, one writer at a time on SQLite). So :class:`GroupCommit` lets the first caller become
the *leader*: it takes every write queued so far (up to ``max_batch``), runs them in one
transaction through ``run_batch``, and hands each caller its own result or exception. Callers
that arrive meanwhile wait and form the next group. With one caller at a time, a group is that
caller alone: no added latency.

``run_batch(changes)`` returns one :class:`Outcome` per change, in order; it is the store's job to
make a failing change cost nobody else their write (see ``Store._run_group``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What one change in a group came to: a value, or the exception its caller gets."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class _Waiting:
    __slots__ = ("change", "outcome")

    def __init__(self, change: Callable[..., Any]) -> None:
        self.change = change
        self.outcome: Outcome | None = None


class GroupCommit:
    def __init__(self, run_batch: Callable[[Sequence[Callable[..., Any]]], list[Outcome]],
                 max_batch: int = 64) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._leading = False
        self._cond = threading.Condition()
        self.groups = 0  # transactions run (for tests and metrics)
        self.changes = 0  # writes run in them

    def submit(self, change: Callable[..., T]) -> T:
        """Run ``change`` in the next group's transaction; its value, or its exception."""
        me = _Waiting(change)
        with self._cond:
            self._queue.append(me)
        while True:
            with self._cond:
                while me.outcome is None and self._leading:
                    self._cond.wait()
                if me.outcome is not None:  # a leader ran it
                    return me.outcome.unwrap()
                self._leading = True  # lead the next group (oldest first: this call's, or before it)
                group, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            try:
                outcomes = self._run_batch([w.change for w in group])
            except BaseException as exc:  # noqa: BLE001 - the runner failed as a whole: all hear it
                outcomes = [Outcome(error=exc) for _ in group]
            with self._cond:
                self.groups += 1
                self.changes += len(group)
                for waiting, outcome in zip(group, outcomes):
                    waiting.outcome = outcome
                self._leading = False
                self._cond.notify_all()
