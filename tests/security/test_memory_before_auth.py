"""Calls without a valid token cost the server no memory; calls at once are capped.

The registry runs as its own process (its memory is measured in /proc, apart from the clients').
Eight unauthenticated calls of 60 MiB each, at once, with the request size limit raised to 64 MiB
so that the only defence is the order of the checks: each is UNAUTHENTICATED without its message
being received (a received one over a limit would be RESOURCE_EXHAUSTED), and the server's peak
RSS grows by less than 100 MB (it grew by about 1 GB when the token was checked after the
message was parsed). The server advertises a bounded MAX_CONCURRENT_STREAMS in its HTTP/2
SETTINGS, refuses calls beyond ``max_concurrent_calls`` with RESOURCE_EXHAUSTED, and an
authenticated request over the registry's own request limit (8 MiB) is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as rpb
from beamops.registry.v1 import registry_service_pb2_grpc

from tests.fixtures.services import free_port, wait_for_health

from .assertions import assert_clean_error

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
CALL_BYTES = 60 * MiB
CHANNEL = [("grpc.max_send_message_length", 64 * MiB), ("grpc.max_receive_message_length", 64 * MiB)]


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def _calls(address: str, requests: list, metadata=()) -> list[grpc.aio.AioRpcError | object]:
    async with grpc.aio.insecure_channel(address, options=CHANNEL) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)

        async def one(request):
            try:
                return await stub.CreateModel(request, metadata=metadata, timeout=60)
            except grpc.aio.AioRpcError as err:
                return err

        return await asyncio.gather(*(one(r) for r in requests))


def test_unauthenticated_60_mib_calls_are_refused_before_their_message_is_read(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}", max_request_bytes=str(64 * MiB))
    asyncio.run(_calls(proc.address, [rpb.CreateModelRequest(name="warm-up")], tokens.metadata("publisher")))
    before = _peak_rss_mb(proc.process.pid)
    big = rpb.CreateModelRequest(name="bulky", description="x" * CALL_BYTES)
    for metadata in ((), (("authorization", "Bearer not-a-token"),)):
        results = asyncio.run(_calls(proc.address, [big] * 8, metadata))
        for err in results:
            assert isinstance(err, grpc.aio.AioRpcError), err
            assert_clean_error(err, grpc.StatusCode.UNAUTHENTICATED)
    grown = _peak_rss_mb(proc.process.pid) - before
    assert grown < 100, f"the registry's peak RSS grew by {grown:.0f} MB for refused calls"
    # Nothing was stored, and the registry still answers.
    stored = asyncio.run(_calls(proc.address, [rpb.CreateModelRequest(name="bulky")], tokens.metadata("publisher")))
    assert not isinstance(stored[0], grpc.aio.AioRpcError), stored[0]


def test_a_request_over_the_registry_limit_is_resource_exhausted(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}")
    big = rpb.CreateModelRequest(name="bulky", description="x" * (9 * MiB))
    (err,) = asyncio.run(_calls(proc.address, [big], tokens.metadata("publisher")))
    assert isinstance(err, grpc.aio.AioRpcError), err
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err


def _advertised_settings(port: int) -> dict[int, int]:
    """The server's HTTP/2 SETTINGS (id -> value), read from a raw connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" + b"\0\0\0\0")
        buffer = b""
        while True:
            while len(buffer) < 9:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection before its SETTINGS"
                buffer += chunk
            length = int.from_bytes(buffer[:3], "big")
            kind, flags = buffer[3], buffer[4]
            while len(buffer) < 9 + length:
                buffer += sock.recv(65536)
            payload, buffer = buffer[9:9 + length], buffer[9 + length:]
            if kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
                return {struct.unpack(">H", payload[i:i + 2])[0]: struct.unpack(">I", payload[i + 2:i + 6])[0]
                        for i in range(0, length, 6)}


def test_streams_per_connection_and_calls_at_once_are_capped(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}", max_concurrent_calls="4")
    max_concurrent_streams = _advertised_settings(proc.port).get(0x3)
    assert max_concurrent_streams == 100, max_concurrent_streams

    async def open_six() -> tuple[list, object]:
        async with grpc.aio.insecure_channel(proc.address) as channel:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
            streams = [stub.WatchAliasEvents(rpb.WatchAliasEventsRequest(), metadata=tokens.metadata("reader"))
                       for _ in range(6)]
            reading = [asyncio.ensure_future(s.read()) for s in streams]
            await asyncio.wait(reading, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0.5)  # the other streams are refused or open by now
            refused = [f.exception() for f in reading if f.done()]
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*reading, return_exceptions=True)
            after = None
            for _ in range(200):  # the streams' places are given back
                try:
                    after = await stub.ListModels(rpb.ListModelsRequest(), metadata=tokens.metadata("reader"),
                                                  timeout=10)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)
            return refused, after

    refused, after = asyncio.run(open_six())
    assert len(refused) >= 2, refused  # at most four open at once
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
               for e in refused), refused
    assert after is not None


# ------------------------------------------------------------------ every service, and the gateway

def _request(size: int) -> bytes:
    """A request whose field 1 (a string in every request used below) holds ``size`` bytes."""
    varint, n = b"", size
    while True:
        byte, n = n & 0x7F, n >> 7
        varint += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return b"\x0a" + varint + b"x" * size


def _raw_calls(address: str, method: str, count: int, metadata=(), size: int = CALL_BYTES) -> list:
    async def run() -> list:
        async with grpc.aio.insecure_channel(address, options=CHANNEL) as channel:
            call = channel.unary_unary(method)  # bytes in, bytes out: what any client can send

            async def one():
                try:
                    return await call(_request(size), metadata=metadata, timeout=60)
                except grpc.aio.AioRpcError as err:
                    return err

            return await asyncio.gather(*(one() for _ in range(count)))

    return asyncio.run(run())


def _start_service(name: str, tmp_path, tokens, **env: str) -> subprocess.Popen:
    port = free_port()
    prefix = f"BEAMOPS_{name.upper()}_"
    environment = dict(os.environ, **{f"{prefix}PORT": str(port), f"{prefix}VAR_DIR": str(tmp_path / name),
                                      f"{prefix}TOKENS_FILE": str(tokens.path), f"{prefix}LOG_JSON": "false",
                                      f"{prefix}MAX_REQUEST_BYTES": str(64 * MiB)},
                       **{f"{prefix}{k.upper()}": v for k, v in env.items()})
    process = subprocess.Popen([sys.executable, "-m", f"beamops.{name}.server"], cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.port = port
    try:
        wait_for_health(port, timeout=120)
    except BaseException:
        process.kill()
        raise
    return process


def _gateway_pid(parent: int) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == parent and b"beamops-gateway" in (proc / "cmdline").read_bytes():
                    return int(proc.name)
            except OSError:
                continue
    raise AssertionError("the inference service runs no gateway")


METHODS = {
    "data": "/beamops.data.v1.DataService/GetDataset",
    "training": "/beamops.training.v1.TrainingService/GetJob",
    "inference": "/beamops.inference.v1.InferenceService/GetDeployment",
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_service_refuses_unauthenticated_60_mib_calls_unread(name, tmp_path, tokens):
    """As the registry above: the data, training and inference services share its interceptor;
    each in its own process, 8 calls without a token and 8 with an unknown one."""
    process = _start_service(name, tmp_path, tokens)
    try:
        address = f"127.0.0.1:{process.port}"
        _raw_calls(address, METHODS[name], 1, tokens.metadata("reader"), size=10)  # warm-up, answered
        before = _peak_rss_mb(process.pid)
        for metadata in ((), (("authorization", "Bearer not-a-token"),)):
            for err in _raw_calls(address, METHODS[name], 8, metadata):
                assert isinstance(err, grpc.aio.AioRpcError), err
                assert_clean_error(err, grpc.StatusCode.UNAUTHENTICATED)
        grown = _peak_rss_mb(process.pid) - before
        assert grown < 100, f"the {name} service's peak RSS grew by {grown:.0f} MB for refused calls"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_gateway_refuses_unauthenticated_60_mib_calls_unread(tmp_path, tokens):
    """The gateway (Go) checks the caller before it receives the message, on beamops Predict and on
    Triton's ModelInfer: its peak RSS and the inference service's stay flat."""
    gateway_port = free_port()
    process = _start_service("inference", tmp_path, tokens, gateway_port=str(gateway_port))
    try:
        wait_for_health(gateway_port, timeout=120)
        gateway = _gateway_pid(process.pid)
        address = f"127.0.0.1:{gateway_port}"
        before = {pid: _peak_rss_mb(pid) for pid in (gateway, process.pid)}
        for method in ("/beamops.inference.v1.InferenceService/Predict", "/inference.GRPCInferenceService/ModelInfer"):
            for metadata in ((), (("authorization", "Bearer not-a-token"),)):
                for err in _raw_calls(address, method, 8, metadata):
                    assert isinstance(err, grpc.aio.AioRpcError), err
                    assert_clean_error(err, grpc.StatusCode.UNAUTHENTICATED)
        for pid, peak in before.items():
            grown = _peak_rss_mb(pid) - peak
            assert grown < 100, f"process {pid}'s peak RSS grew by {grown:.0f} MB for refused calls"
    finally:
        process.terminate()
        process.wait(timeout=60)
