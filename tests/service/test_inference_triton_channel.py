"""The Triton adapter when its channel is replaced under calls in flight (what happens when the
bundled Triton restarts: the service reconnects while loads are waiting on the old channel).

A server that never answers (tests/fakes/hung_triton.py) holds the calls pending.
"""

from __future__ import annotations

import asyncio

import pytest

from beamops.inference.triton.backend import TritonBackend
from beamops.runtime.errors import Unavailable

from tests.fakes.hung_triton import hung_triton


@pytest.fixture
async def silent_triton():
    async with hung_triton() as address:
        yield address


async def test_calls_cut_by_a_reconnect_are_unavailable_not_cancelled(silent_triton):
    backend = TritonBackend(silent_triton, load_timeout_s=60)
    try:
        load = asyncio.create_task(backend.load("m"))
        unload = asyncio.create_task(backend.unload("n"))
        ready = asyncio.create_task(backend.is_model_ready("m"))
        await asyncio.sleep(0.3)
        assert not load.done() and not unload.done()  # both are waiting on the hung server
        await backend.reconnect()
        done, pending = await asyncio.wait([load, unload, ready], timeout=10)
        assert not pending
        for task in (load, unload):
            with pytest.raises(Unavailable, match="Triton is not reachable"):
                task.result()
        assert ready.result() is False
    finally:
        await backend.close()


async def test_a_caller_cancelled_while_calling_triton_stays_cancelled(silent_triton):
    backend = TritonBackend(silent_triton, load_timeout_s=60)
    try:
        load = asyncio.create_task(backend.load("m"))
        await asyncio.sleep(0.3)
        load.cancel()
        with pytest.raises(asyncio.CancelledError):
            await load
    finally:
        await backend.close()
