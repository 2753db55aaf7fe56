"""GatewayService, the control plane the gateway relies on, through a real inference service (no
Go binary): the route table follows deployments, Authorize answers like the service's own token
checks, only admins may call it, and usage reports move the service's Prometheus series.

The last tests start the service with a stand-in gateway binary (a Python script written
here that forwards unary calls and watches routes with the token it was given), to check how
the service starts, restarts and stops its gateway; the real gateway is tested in
test_inference_gateway.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.inference.v1 import gateway_service_pb2 as gpb, gateway_service_pb2_grpc
from beamops.inference.v1 import inference_service_pb2_grpc
from beamops.tensors import to_tensor
from tests.fixtures.inference import MLP_SIGNATURE, N_FEATURES, mlp_onnx, standard_normal_references
from tests.fixtures.registry import assert_clear


async def _next_table(stream, timeout: float = 60.0) -> gpb.WatchRoutesResponse:
    return await asyncio.wait_for(stream.read(), timeout)


async def _table_where(stream, done, timeout: float = 60.0) -> gpb.WatchRoutesResponse:
    """The first table from ``stream`` for which ``done(table)`` holds."""
    while True:
        table = await _next_table(stream, timeout)
        if done(table):
            return table


def _names(table: gpb.WatchRoutesResponse) -> list[str]:
    return [r.deployment for r in table.routes]


async def test_route_table_follows_deployments(inference_stack):
    stack = inference_stack
    v1 = await stack.publish("jets", mlp_onnx(seed=1), alias="production",
                             references=standard_normal_references())
    async with stack.inference() as (server, stub):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            stream = gateway.WatchRoutes(gpb.WatchRoutesRequest(), metadata=stack.md("admin"))
            first = await _next_table(stream)
            assert first.routes == [] and first.generation > 0

            await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                              metadata=stack.md("deployer"))
            table = await _table_where(stream, lambda t: _names(t) == ["jets"])
            assert table.generation > first.generation
            (route,) = table.routes
            assert (route.model, route.parameters_version) == ("jets", v1.version)
            assert route.triton_model == f"jets__{v1.version.replace('.', '_')}"
            assert list(route.inputs) == list(MLP_SIGNATURE.inputs)
            assert list(route.outputs) == list(MLP_SIGNATURE.outputs)
            assert route.max_batch_size == 64 and route.drift  # references: drift is watched

            await stub.Deploy(pb.DeployRequest(
                model="jets", name="jets-small", target=dpb.DeploymentTarget(parameters_version=v1.version),
                serving=dpb.ServingConfig(max_batch_size=8),
                drift_thresholds=dpb.DriftThresholds(disabled=True)), metadata=stack.md("deployer"))
            both = await _table_where(stream, lambda t: _names(t) == ["jets", "jets-small"])
            assert both.generation > table.generation
            small = both.routes[1]
            assert small.max_batch_size == 8 and not small.drift

            # A version switch (the alias moves) replaces the route's version and Triton model.
            v2 = await stack.publish("jets", mlp_onnx(seed=2), alias="production")
            switched = await _table_where(
                stream, lambda t: any(r.deployment == "jets" and r.parameters_version == v2.version
                                      for r in t.routes))
            jets = next(r for r in switched.routes if r.deployment == "jets")
            assert jets.triton_model != route.triton_model and not jets.drift  # v2: no references

            await stub.Undeploy(pb.UndeployRequest(name="jets-small", reason="test"),
                                metadata=stack.md("deployer"))
            last = await _table_where(stream, lambda t: _names(t) == ["jets"])
            assert last.generation > switched.generation

            # A second watcher gets the current table at once.
            again = gateway.WatchRoutes(gpb.WatchRoutesRequest(), metadata=stack.md("admin"))
            now = await _next_table(again)
            assert (now.generation, _names(now)) == (last.generation, ["jets"])
            again.cancel()
            stream.cancel()


async def test_authorize_answers_like_the_services_own_checks(inference_stack):
    stack = inference_stack
    async with stack.inference(gateway_auth_cache_s=2.5) as (server, _):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)

            async def authorize(value: str) -> gpb.AuthorizeResponse:
                return await gateway.Authorize(gpb.AuthorizeRequest(authorization=value),
                                               metadata=stack.md("admin"))

            reply = await authorize(f"Bearer {stack.tokens.reader}")
            assert (reply.principal, reply.role, reply.valid_for_ms) == (
                "reader-user", auth_pb2.ROLE_READER, 2500)
            reply = await authorize(f"Bearer {stack.tokens.deployer}")
            assert (reply.principal, reply.role) == ("deployer-user", auth_pb2.ROLE_DEPLOYER)

            token = stack.tokens.store.create("night-shift", auth_pb2.ROLE_READER)
            assert (await authorize(f"Bearer {token}")).principal == "night-shift"
            stack.tokens.store.revoke("night-shift")
            for value, words in ((f"Bearer {token}", ["unknown or has been revoked"]),
                                 ("Bearer bmo_not-a-real-token", ["unknown or has been revoked"]),
                                 ("", ["needs a token", "Bearer"]),
                                 ("Basic abc", ["needs a token"])):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await authorize(value)
                assert_clear(err.value, grpc.StatusCode.UNAUTHENTICATED, *words)
                assert dict(err.value.trailing_metadata()).get("grpc-status-details-bin")


async def test_gateway_service_needs_the_admin_role(inference_stack):
    stack = inference_stack
    async with stack.inference() as (server, _):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            calls = {
                "Authorize": lambda md: gateway.Authorize(gpb.AuthorizeRequest(
                    authorization=f"Bearer {stack.tokens.reader}"), metadata=md),
                "ReportUsage": lambda md: gateway.ReportUsage(gpb.ReportUsageRequest(), metadata=md),
                "WatchRoutes": lambda md: gateway.WatchRoutes(gpb.WatchRoutesRequest(), metadata=md).read(),
            }
            for name, call in calls.items():
                for role in ("reader", "deployer"):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(stack.md(role))
                    assert_clear(err.value, grpc.StatusCode.PERMISSION_DENIED, name, "admin", role)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(())
                assert_clear(err.value, grpc.StatusCode.UNAUTHENTICATED, "token")
                # An admin token works until it is revoked, and not after.
                admin = stack.tokens.store.create("night-admin", auth_pb2.ROLE_ADMIN)
                await call((("authorization", f"Bearer {admin}"),))
                stack.tokens.store.revoke("night-admin")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call((("authorization", f"Bearer {admin}"),))
                assert_clear(err.value, grpc.StatusCode.UNAUTHENTICATED, "revoked")


async def test_report_usage_moves_the_prometheus_series_and_feeds_drift(inference_stack):
    stack = inference_stack
    v1 = await stack.publish("jets", mlp_onnx(), alias="production",
                             references=standard_normal_references())
    async with stack.inference() as (server, stub):
        await stub.Deploy(pb.DeployRequest(
            model="jets", target=dpb.DeploymentTarget(alias="production"),
            drift_thresholds=dpb.DriftThresholds(window_size=1000, min_samples=10)),
            metadata=stack.md("deployer"))
        rng = np.random.default_rng(3)
        usage = gpb.DeploymentUsage(deployment="jets", parameters_version=v1.version, requests=7,
                                    errors={"INVALID_ARGUMENT": 3}, latency_seconds=[0.001] * 7,
                                    batch_rows=[5] * 7)
        for _ in range(4):
            usage.samples.add(
                inputs=[to_tensor("x", rng.normal(size=(5, N_FEATURES)).astype(np.float32))],
                outputs=[to_tensor("probabilities", np.full((5, 3), 1 / 3, np.float32)),
                         to_tensor("label", np.zeros(5, np.int64))])
        gone = gpb.DeploymentUsage(deployment="gone", parameters_version="1.0", requests=9)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            await gateway.ReportUsage(gpb.ReportUsageRequest(deployments=[usage, gone]),
                                      metadata=stack.md("admin"))

            bad = gpb.DeploymentUsage(deployment="jets", parameters_version=v1.version)
            bad.samples.add(inputs=[to_tensor("x", np.zeros((2, N_FEATURES), np.float32))])
            bad.samples[0].inputs[0].raw_data = b"\x00" * 3
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await gateway.ReportUsage(gpb.ReportUsageRequest(deployments=[bad]),
                                          metadata=stack.md("admin"))
            assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "'x'", "bytes")

        m = server.metrics
        assert m.get_sample_value("beamops_inference_requests_total",
                                  {"deployment": "jets", "version": v1.version}) == 7
        assert m.get_sample_value("beamops_inference_errors_total",
                                  {"deployment": "jets", "code": "INVALID_ARGUMENT"}) == 3
        assert m.get_sample_value("beamops_inference_latency_seconds_count", {"deployment": "jets"}) == 7
        assert m.get_sample_value("beamops_inference_batch_size_sum", {"deployment": "jets"}) == 35
        assert m.get_sample_value("beamops_inference_requests_total",
                                  {"deployment": "gone", "version": "1.0"}) is None
        report = (await stub.GetDriftReport(pb.GetDriftReportRequest(deployment="jets"),
                                            metadata=stack.md("reader"))).report
        assert report.available and report.window_samples == 20  # 4 samples of 5 rows


# ---- supervision, with a stand-in for the binary ----------------------------------------------------

STAND_IN = textwrap.dedent('''\
    """Stands in for beamops-gateway: forwards unary calls to --service; watches routes."""
    import argparse, asyncio, json, os, signal, sys
    from pathlib import Path
    import grpc
    from beamops.inference.v1 import gateway_service_pb2 as gpb, gateway_service_pb2_grpc

    EVENTS = Path(__file__).with_suffix(".events")

    def event(**fields):
        with open(EVENTS, "a") as f:
            f.write(json.dumps(dict(pid=os.getpid(), **fields)) + "\\n")

    async def main():
        p = argparse.ArgumentParser()
        for flag in ("listen", "service", "triton", "max-message-bytes", "infer-timeout",
                     "drift-samples-per-s", "coalesce-in-flight"):
            p.add_argument("--" + flag, required=True)
        p.add_argument("--http-listen")
        p.add_argument("--exit-with-parent", action="store_true")
        args = p.parse_args()
        token = sys.stdin.readline().strip()  # as beamops-gateway: the service passes it on stdin
        event(kind="start", argv=sys.argv[1:], beamops_env=sorted(k for k in os.environ
                                                                 if k.startswith("BEAMOPS_")))
        upstream = grpc.aio.insecure_channel(args.service)

        class Forward(grpc.GenericRpcHandler):
            def service(self, details):
                async def unary(request, context):
                    md = [(k, v) for k, v in context.invocation_metadata()
                          if k in ("authorization", "x-request-id")]
                    try:
                        return await upstream.unary_unary(details.method)(request, metadata=md)
                    except grpc.aio.AioRpcError as exc:
                        await context.abort(exc.code(), exc.details(), tuple(exc.trailing_metadata() or ()))
                return grpc.unary_unary_rpc_method_handler(unary)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((Forward(),))
        if server.add_insecure_port(args.listen) == 0:
            sys.exit(f"cannot listen on {args.listen}")
        await server.start()
        routes = gateway_service_pb2_grpc.GatewayServiceStub(upstream).WatchRoutes(
            gpb.WatchRoutesRequest(), metadata=(("authorization", f"Bearer {token}"),))
        table = await routes.read()
        event(kind="routes", generation=table.generation)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        routes.cancel()
        await server.stop(1)
        event(kind="sigterm")

    asyncio.run(main())
    ''')


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "stand-in" / "beamops-gateway"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


def _events(binary: Path) -> list[dict]:
    path = binary.with_suffix(".events")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status


async def test_the_service_starts_restarts_and_stops_its_gateway(inference_stack, stand_in, monkeypatch):
    stack = inference_stack
    monkeypatch.setenv("BEAMOPS_INFERENCE_REGISTRY_TOKEN", "not-for-the-gateway")
    pid_file = stack.var_dir / "gateway" / "gateway.pid"
    # The stand-in cannot run Triton inside: Triton runs as its own process here.
    async with stack.inference(gateway_binary=str(stand_in), triton_in_gateway=False,
                               triton_infer_timeout_s=12.5, gateway_drift_samples_per_s=50,
                               coalesce_max_in_flight=3,
                               max_message_bytes=3 * 1024 * 1024) as (server, _):
        port = server.gateway_port
        assert port and port != server.port and server.gateway_address == f"127.0.0.1:{port}"
        assert await _health(server.gateway_address) == health_pb2.HealthCheckResponse.SERVING

        start = _events(stand_in)[0]
        assert start["argv"][-1] == "--exit-with-parent"
        flags = dict(zip(start["argv"][:-1:2], start["argv"][1:-1:2]))
        assert flags["--listen"] == f"127.0.0.1:{port}"
        assert flags["--service"] == f"127.0.0.1:{server.port}"
        assert flags["--max-message-bytes"] == str(3 * 1024 * 1024)
        assert flags["--infer-timeout"] == "12.5" and flags["--drift-samples-per-s"] == "50"
        assert flags["--coalesce-in-flight"] == "3"
        assert flags["--triton"].startswith("127.0.0.1:")
        assert start["beamops_env"] == []  # no beamops secret: the token came on stdin
        pid = int(pid_file.read_text())
        assert pid == start["pid"]

        # Through the gateway port, the service's own checks apply (here: forwarded by the stand-in).
        async with grpc.aio.insecure_channel(server.gateway_address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await inference_service_pb2_grpc.InferenceServiceStub(channel).GetDeployment(
                    pb.GetDeploymentRequest(name="nope"), metadata=stack.md("reader"))
            assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "'nope'")

        # The gateway's token works for GatewayService (WatchRoutes answered), and only here.
        for _ in range(200):
            if any(e["kind"] == "routes" for e in _events(stand_in)):
                break
            await asyncio.sleep(0.05)
        assert any(e["kind"] == "routes" and e["pid"] == pid for e in _events(stand_in))
        assert "inference-gateway" not in stack.tokens.store.names()

        # Killed: restarted on the same port, counted.
        os.kill(pid, signal.SIGKILL)
        for _ in range(600):
            restarts = server.metrics.get_sample_value("beamops_inference_gateway_restarts_total")
            if restarts and pid_file.exists() and int(pid_file.read_text()) != pid:
                break
            await asyncio.sleep(0.05)
        assert server.metrics.get_sample_value("beamops_inference_gateway_restarts_total") == 1
        new_pid = int(pid_file.read_text())
        assert new_pid != pid and server.gateway_port == port
        assert await _health(server.gateway_address) == health_pb2.HealthCheckResponse.SERVING

    # Stopped with the service: SIGTERM (it stopped gracefully), pid file gone, process gone.
    assert {"kind": "sigterm", "pid": new_pid} in _events(stand_in)
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)
    assert (stack.var_dir / "gateway" / "gateway.log").exists()


async def test_a_missing_gateway_binary_refuses_to_start(inference_stack, tmp_path):
    stack = inference_stack
    with pytest.raises(FileNotFoundError) as err:
        async with stack.inference(gateway_binary=str(tmp_path / "missing")):
            pass
    assert "make gateway" in str(err.value)
    assert not (stack.var_dir / "triton").exists()  # refused before anything was started
