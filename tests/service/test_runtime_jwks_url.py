"""JWT bearer tokens checked against the identity provider's JWKS URL (a real HTTP server on this
machine): the registry accepts tokens signed with the served keys, a rotated key is picked up
after a token names it, made-up key ids cannot make beamops hammer the provider, and a provider
that cannot be reached stops the start clearly."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import jwt
import pytest

from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.auth import JwksUrl, JwtVerifier
from beamops.runtime.errors import Unauthenticated

from tests.fixtures.jwt_issuer import AUDIENCE, ISSUER, new_rsa_key
from tests.fixtures.services import running


def _jwk(key, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


class Provider:
    """Serves ``/certs`` (the current key set) and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/certs"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def provider(_issuer_key, jwt_issuer):
    p = Provider()
    p.keys = [_jwk(_issuer_key, jwt_issuer.kid)]
    yield p
    p.close()


async def test_the_registry_accepts_tokens_signed_with_the_served_keys(tmp_path, tokens, provider, jwt_issuer):
    settings = RegistrySettings(port=0, var_dir=tmp_path / "var", tokens_file=tokens.path,
                                database_url=f"sqlite:///{tmp_path / 'registry.db'}",
                                jwt_jwks_url=provider.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    async with running(create_server, settings) as (_server, channel):
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        token = jwt_issuer.token("carol", "publisher")
        model = (await stub.CreateModel(rs.CreateModelRequest(name="bpm-filter"),
                                        metadata=(("authorization", f"Bearer {token}"),))).model
        assert model.owner == "carol"
        forged = jwt_issuer.token("mallory", "admin", key=new_rsa_key())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateModel(rs.CreateModelRequest(name="evil"),
                                   metadata=(("authorization", f"Bearer {forged}"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_rotated_key_is_fetched_after_a_token_names_it(provider, jwt_issuer):
    verifier = JwtVerifier(JwksUrl(provider.url, min_refetch_s=0.1), ISSUER, AUDIENCE)
    assert verifier.authenticate(jwt_issuer.token("alice", "reader")).name == "alice"
    new_key = new_rsa_key()
    provider.keys.append(_jwk(new_key, "test-key-2"))  # the provider rotates
    rotated = jwt_issuer.token("bob", "reader", key=new_key, kid="test-key-2")
    with pytest.raises(Unauthenticated):
        verifier.authenticate(rotated)  # not in the keys at hand: refused now, fetched meanwhile
    deadline = time.monotonic() + 10
    while True:
        try:
            assert verifier.authenticate(rotated).name == "bob"
            break
        except Unauthenticated:
            assert time.monotonic() < deadline, "the rotated key was never fetched"
            time.sleep(0.05)


def test_made_up_key_ids_do_not_hammer_the_provider(provider, jwt_issuer):
    verifier = JwtVerifier(JwksUrl(provider.url, min_refetch_s=60), ISSUER, AUDIENCE)
    fetched = provider.fetches
    for i in range(200):
        with pytest.raises(Unauthenticated):
            verifier.authenticate(jwt_issuer.token("mallory", "admin", kid=f"made-up-{i}"))
    time.sleep(0.3)
    assert provider.fetches - fetched <= 1  # at most one early refetch per minute


def test_an_unreachable_provider_or_a_plain_http_url_stops_the_start(provider):
    url = provider.url
    provider.close()
    with pytest.raises(ValueError, match="could not read the JWKS"):
        JwksUrl(url)
    with pytest.raises(ValueError, match="https"):
        JwksUrl("http://sso.example.org/certs")
