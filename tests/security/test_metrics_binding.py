"""/metrics has no authentication and names every model and deployment: it listens on loopback
unless ``metrics_host`` says otherwise, even when the service itself listens on every interface
(``host = 0.0.0.0``, as in containers).

The listening sockets are read from the kernel's tables (/proc/net/tcp, tcp6), so the test does
not depend on which addresses this machine has.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration

LISTEN = "0A"


def _listening_addresses(port: int) -> set[str]:
    """The local addresses (as the kernel writes them, hex) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


LOOPBACK = "0100007F"  # 127.0.0.1, little-endian hex
ANY = {"00000000", "00000000000000000000000000000000"}


def test_metrics_listen_on_loopback_when_the_service_listens_everywhere(registry_process, tmp_path):
    metrics_port = free_port()
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}", host="0.0.0.0",
                            metrics_port=str(metrics_port))
    assert _listening_addresses(proc.port) & ANY, "the gRPC port should listen on every interface"
    assert _listening_addresses(metrics_port) == {LOOPBACK}
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        assert b"beamops_" in answer.read()


def test_metrics_host_opens_them_to_a_network_when_set(registry_process, tmp_path):
    metrics_port = free_port()
    registry_process(f"sqlite:///{tmp_path / 'registry.db'}", host="0.0.0.0",
                     metrics_port=str(metrics_port), metrics_host="0.0.0.0")
    assert _listening_addresses(metrics_port) & ANY
