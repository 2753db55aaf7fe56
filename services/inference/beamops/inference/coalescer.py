"""Coalescing of concurrent small Predict requests into one Triton call (no gRPC here).

Each call to Triton costs the gateway a fixed amount of CPU (a gRPC round trip from Python),
whatever its size. So, per Triton model of a batching deployment, at most ``max_in_flight``
calls run at once; requests that arrive while they run wait in a queue, and when a call ends the
waiting requests (same input trailing shapes, same outputs, at most ``max_rows`` rows and
``max_bytes`` bytes together) go to Triton as one request, concatenated along the batch axis;
the outputs are cut back into each request's rows. A request that arrives when fewer calls are
in flight goes out at once: sequential callers see no added delay; so does a request too large
to share a call (more than half of ``max_rows`` or ``max_bytes``).

Errors stay with their request: if a coalesced call fails for a reason other than Triton being
unreachable, each of its requests is sent again on its own.

A waiting request gives up after ``timeout_s`` in all (its wait in the queue and its share of a
call) with :class:`Unavailable`: a Triton call that hangs delays the requests queued behind it by at
most that much, never by a second call's timeout on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from beamops.runtime.errors import BeamopsError, Unavailable

from .domain import RawTensor

Run = Callable[[Sequence[RawTensor], Sequence[str]], Awaitable[list[RawTensor]]]


@dataclass(slots=True)
class _Waiting:
    tensors: Sequence[RawTensor]
    rows: int
    outputs: Sequence[str]
    key: tuple
    size: int
    future: asyncio.Future = field(repr=False)


def _key(tensors: Sequence[RawTensor], outputs: Sequence[str]) -> tuple:
    return (tuple(outputs), tuple(sorted((t.name, t.dtype, t.shape[1:]) for t in tensors)))


class Coalescer:
    """Sends a batching Triton model's requests through ``run``, coalescing them under load."""

    def __init__(self, run: Run, *, max_rows: int, max_in_flight: int = 2,
                 max_bytes: int = 4 << 20, timeout_s: float = 30.0, counter=None) -> None:
        self._run = run
        self.timeout_s = timeout_s
        self._counter = counter  # anything with .inc(n): counts the requests sent coalesced
        self.max_rows, self.max_in_flight, self.max_bytes = max_rows, max_in_flight, max_bytes
        self._in_flight = 0
        self._queue: list[_Waiting] = []
        self._tasks: set[asyncio.Task] = set()

    async def infer(self, tensors: Sequence[RawTensor], rows: int,
                    outputs: Sequence[str]) -> list[RawTensor]:
        size = sum(len(t.data) for t in tensors)
        if rows * 2 > self.max_rows or size * 2 > self.max_bytes:
            # Too large to share a call with another: waiting would only add delay.
            return await self._run(tensors, outputs)
        if self._in_flight < self.max_in_flight and not self._queue:
            self._in_flight += 1
            try:
                return await self._run(tensors, outputs)
            finally:
                self._in_flight -= 1
                if self._queue:
                    self._kick()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(tensors, rows, outputs, _key(tensors, outputs), size, future))
        if self._in_flight < self.max_in_flight:
            self._kick()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await future  # cancelled on timeout: _take skips it
        except TimeoutError:
            raise Unavailable(f"Triton did not answer within {self.timeout_s:g} s (running the "
                              "model); retry shortly") from None

    def _kick(self) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            batch = self._take()
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Waiting]:
        """The first waiting request, and the waiting requests that can go with it."""
        queue = self._queue
        while queue and queue[0].future.done():  # cancelled while waiting
            queue.pop(0)
        if not queue:
            return []
        first = queue.pop(0)
        batch, rows, size, rest = [first], first.rows, first.size, []
        for waiting in queue:
            if waiting.future.done():
                continue
            if (waiting.key == first.key and rows + waiting.rows <= self.max_rows
                    and size + waiting.size <= self.max_bytes):
                batch.append(waiting)
                rows += waiting.rows
                size += waiting.size
            else:
                rest.append(waiting)
        self._queue = rest
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                await self._alone(batch[0])
                return
            if self._counter is not None:
                self._counter.inc(len(batch))
            try:
                result = await self._run(_concatenate(batch), batch[0].outputs)
                parts = _split(result, [w.rows for w in batch])
            except Unavailable as exc:  # Triton unreachable or the model not loaded: same for all
                for waiting in batch:
                    _fail(waiting.future, exc)
                return
            except (BeamopsError, ValueError):  # let each request meet its own fate
                await asyncio.gather(*(self._alone(w) for w in batch))
                return
            for waiting, part in zip(batch, parts):
                if not waiting.future.done():
                    waiting.future.set_result(part)
        except BaseException as exc:  # noqa: BLE001 - no request may wait forever
            for waiting in batch:
                _fail(waiting.future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._in_flight -= 1
            if self._queue:
                self._kick()

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            result = await self._run(waiting.tensors, waiting.outputs)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            _fail(waiting.future, exc)
        else:
            if not waiting.future.done():
                waiting.future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _concatenate(batch: list[_Waiting]) -> list[RawTensor]:
    """The requests' inputs joined along the batch axis (C order: the bytes one after another)."""
    rows = sum(w.rows for w in batch)
    out = []
    for tensor in batch[0].tensors:
        parts = [tensor.data]
        for waiting in batch[1:]:
            parts.append(next(t.data for t in waiting.tensors if t.name == tensor.name))
        out.append(RawTensor(tensor.name, tensor.dtype, (rows, *tensor.shape[1:]), b"".join(parts)))
    return out


def _split(outputs: list[RawTensor], rows: list[int]) -> list[list[RawTensor]]:
    """Cuts batch-major outputs back into each request's rows; ValueError if they are not."""
    total = sum(rows)
    parts: list[list[RawTensor]] = [[] for _ in rows]
    for tensor in outputs:
        if not tensor.shape or tensor.shape[0] != total or len(tensor.data) % total:
            raise ValueError(f"output {tensor.name!r} is not batch-major")
        row_bytes = len(tensor.data) // total
        view, start = memoryview(tensor.data), 0
        for part, n in zip(parts, rows):
            end = start + n * row_bytes
            part.append(RawTensor(tensor.name, tensor.dtype, (n, *tensor.shape[1:]),
                                  bytes(view[start:end])))
            start = end
    return parts
