"""Coalescing concurrent Predict requests into one Triton call, and cutting the answer apart."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.coalescer import Coalescer
from beamops.inference.domain import RawTensor
from beamops.runtime.errors import FailedPrecondition, Unavailable

F32, I64 = tensor_pb2.DATA_TYPE_FLOAT32, tensor_pb2.DATA_TYPE_INT64


def _x(rows: int, start: float) -> RawTensor:
    values = np.arange(start, start + rows * 2, dtype=np.float32).reshape(rows, 2)
    return RawTensor("x", F32, (rows, 2), values.tobytes())


class FakeTriton:
    """Answers sum(x) per row (FP32 [rows, 1]) and the row count (INT64 [rows]); records calls."""

    def __init__(self, fail_on: float | None = None, unavailable: bool = False) -> None:
        self.calls: list[int] = []
        self.fail_on, self.unavailable = fail_on, unavailable
        self.release = asyncio.Event()

    async def __call__(self, tensors, outputs):
        (x,) = tensors
        values = np.frombuffer(x.data, np.float32).reshape(x.shape)
        self.calls.append(x.shape[0])
        await self.release.wait()
        if self.unavailable:
            raise Unavailable("Triton is not reachable")
        if self.fail_on is not None and self.fail_on in values:
            raise FailedPrecondition(f"model failed on {self.fail_on}")
        result = {
            "sum": RawTensor("sum", F32, (x.shape[0], 1), values.sum(axis=1, keepdims=True).tobytes()),
            "rows": RawTensor("rows", I64, (x.shape[0],), np.full(x.shape[0], x.shape[0]).tobytes()),
        }
        return [result[n] for n in outputs]


def _sums(out: list[RawTensor]) -> list[float]:
    return np.frombuffer(out[0].data, np.float32).tolist()


async def _started(*coros):
    tasks = [asyncio.create_task(c) for c in coros]
    await asyncio.sleep(0)  # let them all reach the coalescer
    return tasks


async def test_a_lone_request_goes_at_once_and_waiting_ones_share_one_call():
    triton = FakeTriton()
    coalescer = Coalescer(triton, max_rows=64, max_in_flight=1)
    first, *rest = await _started(
        coalescer.infer([_x(1, 0)], 1, ["sum"]),
        coalescer.infer([_x(2, 10)], 2, ["sum"]),
        coalescer.infer([_x(1, 20)], 1, ["sum"]),
        coalescer.infer([_x(3, 30)], 3, ["sum"]))
    assert triton.calls == [1]  # only the first is in flight; the others wait
    triton.release.set()
    results = await asyncio.gather(first, *rest)
    assert triton.calls == [1, 6]  # the three waiting requests went together: 2 + 1 + 3 rows
    assert _sums(results[0]) == [1.0]
    assert _sums(results[1]) == [21.0, 25.0] and results[1][0].shape == (2, 1)
    assert _sums(results[2]) == [41.0]
    assert _sums(results[3]) == [61.0, 65.0, 69.0] and results[3][0].shape == (3, 1)


async def test_rows_limit_and_different_outputs_are_not_coalesced_together():
    triton = FakeTriton()
    coalescer = Coalescer(triton, max_rows=4, max_in_flight=1)
    tasks = await _started(
        coalescer.infer([_x(1, 0)], 1, ["sum"]),
        coalescer.infer([_x(3, 0)], 3, ["sum"]),
        coalescer.infer([_x(2, 0)], 2, ["sum"]),   # 3 + 2 > 4 rows: next call
        coalescer.infer([_x(1, 0)], 1, ["rows"]))  # other outputs: its own call
    triton.release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(triton.calls[1:]) == [1, 2, 3] and len(triton.calls) == 4
    assert np.frombuffer(results[3][0].data, np.int64).tolist() == [1]
    assert results[3][0].shape == (1,)


async def test_a_failing_request_fails_alone_and_unreachable_triton_fails_all():
    triton = FakeTriton(fail_on=30.0)
    coalescer = Coalescer(triton, max_rows=64, max_in_flight=1)
    tasks = await _started(
        coalescer.infer([_x(1, 0)], 1, ["sum"]),
        coalescer.infer([_x(1, 10)], 1, ["sum"]),
        coalescer.infer([_x(1, 30)], 1, ["sum"]),
        coalescer.infer([_x(1, 20)], 1, ["sum"]))
    triton.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], FailedPrecondition) and "30.0" in results[2].message
    assert [_sums(results[i]) for i in (0, 1, 3)] == [[1.0], [21.0], [41.0]]

    down = FakeTriton(unavailable=True)
    coalescer = Coalescer(down, max_rows=64, max_in_flight=1)
    tasks = await _started(*(coalescer.infer([_x(1, i)], 1, ["sum"]) for i in range(4)))
    down.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert down.calls == [1, 3]  # no retries one by one when Triton is unreachable


async def test_a_cancelled_waiting_request_is_left_out():
    triton = FakeTriton()
    coalescer = Coalescer(triton, max_rows=64, max_in_flight=1)
    first, gone, kept = await _started(
        coalescer.infer([_x(1, 0)], 1, ["sum"]),
        coalescer.infer([_x(5, 0)], 5, ["sum"]),
        coalescer.infer([_x(1, 10)], 1, ["sum"]))
    gone.cancel()
    triton.release.set()
    assert _sums(await first) == [1.0] and _sums(await kept) == [21.0]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert triton.calls == [1, 1]


async def test_outputs_that_are_not_batch_major_are_answered_one_by_one():
    calls = []

    async def scalar_model(tensors, outputs):
        calls.append(tensors[0].shape[0])
        await asyncio.sleep(0)  # the others arrive meanwhile
        return [RawTensor("n", I64, (), np.int64(tensors[0].shape[0]).tobytes())]

    coalescer = Coalescer(scalar_model, max_rows=64, max_in_flight=1)
    results = await asyncio.gather(*(coalescer.infer([_x(r, 0)], r, ["n"]) for r in (1, 2, 3)))
    assert [np.frombuffer(r[0].data, np.int64)[0] for r in results] == [1, 2, 3]
    assert calls == [1, 5, 2, 3]  # one coalesced try, then each alone


async def test_requests_queued_behind_a_hung_call_give_up_after_the_timeout_and_are_not_sent():
    triton = FakeTriton()  # never released: the first call hangs
    coalescer = Coalescer(triton, max_rows=64, max_in_flight=1, timeout_s=0.05)
    hung, *queued = await _started(*(coalescer.infer([_x(1, i)], 1, ["sum"]) for i in range(3)))
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results), results
    assert "did not answer within 0.05 s" in results[0].message
    assert not hung.done() and triton.calls == [1]
    triton.release.set()  # the hung call ends: the given-up requests are not sent after it
    assert _sums(await hung) == [1.0]
    assert _sums(await coalescer.infer([_x(1, 10)], 1, ["sum"])) == [21.0]
    assert triton.calls == [1, 1]
