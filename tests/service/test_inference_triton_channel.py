"""The Triton adapter when its channel is replaced under calls in flight (what happens when the
bundled Triton restarts: the service reconnects while Predicts are waiting on the old channel).

A server that never answers (tests/fakes/hung_triton.py) holds the calls pending.
"""

from __future__ import annotations

import asyncio

import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.domain import RawTensor
from beamops.inference.triton_backend import TritonBackend
from beamops.runtime.errors import Unavailable

from tests.fakes.hung_triton import hung_triton


@pytest.fixture
async def silent_triton():
    async with hung_triton() as address:
        yield address


async def test_calls_cut_by_a_reconnect_are_unavailable_not_cancelled(silent_triton):
    backend = TritonBackend(silent_triton, infer_timeout_s=60, load_timeout_s=60)
    x = RawTensor("x", tensor_pb2.DATA_TYPE_FLOAT32, (1, 2), bytes(8))
    try:
        infer = asyncio.create_task(backend.infer("m", [x], ["y"]))
        load = asyncio.create_task(backend.load("m"))
        ready = asyncio.create_task(backend.is_model_ready("m"))
        await asyncio.sleep(0.3)
        assert not infer.done() and not load.done()  # both are waiting on the hung server
        await backend.reconnect()
        done, pending = await asyncio.wait([infer, load, ready], timeout=10)
        assert not pending
        for task in (infer, load):
            with pytest.raises(Unavailable, match="Triton is not reachable"):
                task.result()
        assert ready.result() is False
    finally:
        await backend.close()


async def test_a_caller_cancelled_while_calling_triton_stays_cancelled(silent_triton):
    backend = TritonBackend(silent_triton, infer_timeout_s=60)
    x = RawTensor("x", tensor_pb2.DATA_TYPE_FLOAT32, (1, 2), bytes(8))
    try:
        infer = asyncio.create_task(backend.infer("m", [x], ["y"]))
        await asyncio.sleep(0.3)
        infer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await infer
    finally:
        await backend.close()
