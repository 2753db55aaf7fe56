"""The registry's own metrics on the server's Prometheus registry: read-cache hits and misses,
whether the cache is on, and writes per transaction (group commit)."""

from __future__ import annotations

from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc

from tests.fixtures.registry import RegistryClient
from tests.fixtures.services import running


async def test_cache_and_group_commit_metrics(tmp_path, tokens, registry_database_url):
    settings = RegistrySettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path,
                                database_url=registry_database_url)
    async with running(create_server, settings) as (server, channel):
        client = RegistryClient(registry_service_pb2_grpc.RegistryServiceStub(channel), tokens, settings)
        metric = server.metrics.get_sample_value
        writes_before = metric("beamops_registry_writes_total")
        await client.create_model("calo")
        await client.create_type("calo", "1.0.0")
        await client.create_params("calo", "1.0.0")
        await client.stub.SetAlias(rs.SetAliasRequest(model="calo", alias="production", version="1.0"),
                                   metadata=client.md("deployer"))
        assert metric("beamops_registry_writes_total") - writes_before == 4
        assert metric("beamops_registry_write_transactions_total") >= 1
        assert metric("beamops_registry_read_cache_on") == 1
        misses, hits = (metric("beamops_registry_read_cache_misses_total"),
                        metric("beamops_registry_read_cache_hits_total"))
        for _ in range(3):
            reply = await client.stub.ResolveAlias(rs.ResolveAliasRequest(model="calo", alias="production"),
                                                   metadata=client.md("reader"))
            assert reply.parameters.version == "1.0"
        assert metric("beamops_registry_read_cache_hits_total") - hits >= 2  # the first read fills it
        assert metric("beamops_registry_read_cache_misses_total") - misses >= 1
