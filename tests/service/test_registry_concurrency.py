"""32 concurrent creators of parameters versions of one model: gap-free, duplicate-free versions."""

from __future__ import annotations

import asyncio

from beamops.registry.v1 import registry_service_pb2 as rs


async def test_32_concurrent_creators(registry):
    await registry.create_model("busy")
    await registry.create_type("busy", "1.0.0")
    created = await asyncio.gather(*(
        registry.create_params("busy", "1.0.0", metrics={"i": float(i)}) for i in range(32)))
    versions = sorted(int(p.version.split(".")[1]) for p in created)
    assert versions == list(range(32))  # 1.0 .. 1.31, no gaps, no duplicates
    assert {p.version.split(".")[0] for p in created} == {"1"}
    listed = await registry.stub.ListParametersVersions(rs.ListParametersVersionsRequest(model="busy"),
                                                        metadata=registry.md("reader"))
    assert len(listed.parameters) == 32
    events = await registry.stub.ListAuditEvents(
        rs.ListAuditEventsRequest(model="busy", action="parameters.create"), metadata=registry.md("reader"))
    assert len(events.events) == 32  # one audit event per version, none for retried attempts


async def test_concurrent_retries_with_one_idempotency_key_create_one_version(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    created = await asyncio.gather(*(registry.create_params("m", "1.0.0", idempotency_key="k") for _ in range(8)))
    assert {p.version for p in created} == {"1.0"}
