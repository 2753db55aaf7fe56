"""The gRPC health check of a service, timed from a process of its own (so the caller's event
loop and threads do not count): ``probe(address, seconds)``."""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import sys, time, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
grpc.channel_ready_future(channel).result(timeout=30)
stub = health_pb2_grpc.HealthStub(channel)
stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
times = []
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end or len(times) < 5:
    t = time.perf_counter()
    stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
    times.append((time.perf_counter() - t) * 1000)
    time.sleep(0.05)
times.sort()
print(times[len(times) // 2], times[-1], len(times))
"""


def probe(address: str, seconds: float) -> dict:
    """Health checks of ``address`` for ``seconds`` (at least 5), 50 ms apart: p50, max, count."""
    out = subprocess.run([sys.executable, "-c", _SCRIPT, address, str(seconds)], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"p50_ms": float(out[0]), "max_ms": float(out[1]), "checks": int(out[2])}
