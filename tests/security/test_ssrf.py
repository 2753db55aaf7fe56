"""Item 5: server-side request forgery through data sources (MLflow CVE-2026-2393, Ray
CVE-2023-48023): hosts outside the allowlist, loopback in all its spellings, link-local
169.254.169.254, private ranges, an allowed name that resolves to loopback (a DNS trick), and an
allowed server that redirects to such addresses. All refused before connecting: the listening
sockets that stand in for internal services record no connection.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import grpc
import pytest

from beamops.data.server import create_server
from beamops.data.settings import DataSettings
from beamops.data.v1 import data_service_pb2 as dpb, data_service_pb2_grpc

from tests.fixtures.data_service import DataClient
from tests.fixtures.services import running

from .assertions import ConnectionTrap, expect_error

PD = grpc.StatusCode.PERMISSION_DENIED


class Redirector:
    """An allowed HTTP server that answers every request with a redirect to ``target``."""

    def __init__(self) -> None:
        self.target = ""
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _redirect(self) -> None:
                outer.requests.append(self.path)
                self.send_response(302)
                self.send_header("Location", outer.target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _redirect

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[ConnectionTrap]:
    with ConnectionTrap() as t:
        yield t


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    r = Redirector()
    yield r
    r.close()


@pytest.fixture
async def ssrf_client(tmp_path, tokens, data_root, redirector, trap) -> Iterator[DataClient]:
    """Allowed: a public name, the redirector by its exact address and port, and the names
    'localhost' and 'metadata.google.internal' (to show that an allowed NAME resolving to an
    internal address is still refused)."""
    settings = DataSettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path, data_roots=[data_root],
                            remote_hosts=["eospublic.cern.ch", f"127.0.0.1:{redirector.port}", "localhost",
                                          "*.example.org"],
                            allow_http=True, log_json=False, remote_timeout_s=5)
    async with running(create_server, settings) as (_server, channel):
        yield DataClient(data_service_pb2_grpc.DataServiceStub(channel), channel, tokens)


def internal_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/x.root", f"https://127.0.0.1:{port}/x.root", f"root://127.0.0.1:{port}//x.root",
        f"http://[::1]:{port}/x.root", f"http://localhost:{port}/x.root", f"root://localhost:{port}//x.root",
        f"https://LOCALHOST:{port}/x.root", f"http://localhost.:{port}/x.root",
        f"http://0x7f000001:{port}/x.root", f"http://2130706433:{port}/x.root", f"http://0177.0.0.1:{port}/x.root",
        f"http://127.1:{port}/x.root", f"http://0.0.0.0:{port}/x.root", f"http://[::ffff:127.0.0.1]:{port}/x.root",
        f"http://[0:0:0:0:0:ffff:7f00:1]:{port}/x.root",
        "http://169.254.169.254/latest/meta-data/x.root", "root://169.254.169.254//x.root",
        "http://[fe80::1]/x.root", "http://10.0.0.1/x.root", "http://192.168.1.1/x.root", "http://172.16.0.1/x.root",
        "http://100.64.0.1/x.root", "http://metadata.google.internal/x.root",
        f"http://127.0.0.1.nip.io:{port}/x.root", f"http://evil.com#@127.0.0.1:{port}/x.root",
        f"http://eospublic.cern.ch@127.0.0.1:{port}/x.root", f"http://127.0.0.1:{port}\\@eospublic.cern.ch/x.root",
        f"http://eospublic.cern.ch.127.0.0.1.nip.io:{port}/x.root",
    ]


async def test_internal_and_unlisted_hosts_are_refused_before_connecting(ssrf_client, trap):
    for url in internal_urls(trap.port):
        await expect_error(ssrf_client.register("ssrf", [url]), (PD, grpc.StatusCode.INVALID_ARGUMENT), echo=[url])
    assert trap.accepts == []
    listed = await ssrf_client.stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=ssrf_client.md("reader"))
    assert list(listed.datasets) == []


async def test_an_allowed_name_resolving_to_loopback_is_refused(ssrf_client, trap):
    """'localhost' is on the allowlist by name, but it resolves to 127.0.0.1 / ::1, which the
    allowlist does not name: refused with a message saying why, before any connection."""
    for url in (f"http://localhost:{trap.port}/x.root", f"root://localhost:{trap.port}//x.root"):
        message = await expect_error(ssrf_client.register("ssrf", [url]), PD, "non-public", echo=[url])
        assert "127.0.0.1" not in message and "::1" not in message  # the resolved address is not told
    assert trap.accepts == []


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:{trap}/x.root",
    "http://localhost:{trap}/x.root",
    "http://[::1]:{trap}/x.root",
    "http://10.0.0.1/x.root",
    "file:///etc/passwd",
])
async def test_redirects_from_an_allowed_host_to_internal_addresses_are_refused(ssrf_client, redirector, trap,
                                                                                 target):
    redirector.target = target.format(trap=trap.port)
    url = f"http://127.0.0.1:{redirector.port}/data/x.root"
    message = await expect_error(ssrf_client.register("ssrf", [url]), PD, echo=[url])
    assert redirector.requests, "the allowed server was asked (it is allowed)"
    assert "169.254" not in message and str(trap.port) not in message  # the target is not told
    assert trap.accepts == []
    listed = await ssrf_client.stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=ssrf_client.md("reader"))
    assert list(listed.datasets) == []
