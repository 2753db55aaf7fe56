"""One set of token checks for the service's own calls and the gateway's Authorize: tokens file,
JWT (with its expiry), and in-process tokens; and how long the gateway may reuse an answer."""

from __future__ import annotations

import time

import pytest

from beamops.common.v1 import auth_pb2
from beamops.inference.gateway import convert as gateway_convert
from beamops.inference.gateway.routes import answer_lifetime_ms
from beamops.runtime.auth import (
    ANONYMOUS_ADMIN, Authenticator, JwtVerifier, Principal, TokenStore,
)
from beamops.runtime.errors import PermissionDenied, Unauthenticated

from tests.fixtures.jwt_issuer import AUDIENCE, ISSUER

GATEWAY = Principal("inference-gateway", auth_pb2.ROLE_ADMIN)


@pytest.fixture
def store(tmp_path):
    return TokenStore(tmp_path / "tokens.json")


def test_tokens_file_and_in_process_tokens(store):
    reader = store.create("reader-user", auth_pb2.ROLE_READER)
    auth = Authenticator(store, extra={"in-process-secret": GATEWAY})
    checked = auth.check(f"Bearer {reader}")
    assert checked.principal == Principal("reader-user", auth_pb2.ROLE_READER)
    assert checked.expires_at is None
    assert auth.authenticate("Bearer in-process-secret") == GATEWAY
    assert auth.authenticate("bearer   in-process-secret  ") == GATEWAY  # as the interceptor reads it
    # The in-process token is not in the tokens file, and other authenticators do not know it.
    assert "inference-gateway" not in store.names()
    with pytest.raises(Unauthenticated, match="unknown or has been revoked"):
        Authenticator(store).authenticate("Bearer in-process-secret")


def test_missing_unknown_and_revoked_tokens_are_unauthenticated(store):
    token = store.create("someone", auth_pb2.ROLE_DEPLOYER)
    auth = Authenticator(store)
    for header in ("", "Bearer", "Bearer   ", "Basic abc", token):
        with pytest.raises(Unauthenticated, match="this call needs a token"):
            auth.authenticate(header)
    with pytest.raises(Unauthenticated, match="^the token is unknown or has been revoked$"):
        auth.authenticate("Bearer bmo_not-a-token")
    store.revoke("someone")
    with pytest.raises(Unauthenticated, match="unknown or has been revoked"):
        auth.authenticate(f"Bearer {token}")


def test_disabled_auth_makes_everyone_an_anonymous_admin():
    auth = Authenticator(None)
    assert not auth.enabled
    assert auth.check("").principal == ANONYMOUS_ADMIN


def test_a_jwt_answer_carries_its_expiry(store, jwt_issuer):
    auth = Authenticator(store, JwtVerifier(jwt_issuer.jwks_path, ISSUER, AUDIENCE))
    token = jwt_issuer.token("alice", "deployer", lifetime_s=120)
    checked = auth.check(f"Bearer {token}")
    assert checked.principal == Principal("alice", auth_pb2.ROLE_DEPLOYER)
    assert checked.expires_at == pytest.approx(time.time() + 120, abs=5)
    with pytest.raises(PermissionDenied, match="holds no beamops role"):
        auth.check(f"Bearer {jwt_issuer.token('bob', role=None)}")
    with pytest.raises(Unauthenticated, match="expired"):
        auth.check(f"Bearer {jwt_issuer.token('carol', lifetime_s=-120)}")


def test_answer_lifetime_never_passes_the_tokens_expiry():
    now = 1_000_000.0
    assert answer_lifetime_ms(5.0, None, now) == 5000
    assert answer_lifetime_ms(5.0, now + 60, now) == 5000
    assert answer_lifetime_ms(5.0, now + 2.5, now) == 2500
    assert answer_lifetime_ms(5.0, now - 10, now) == 0  # within the clock-skew leeway: do not cache
    assert answer_lifetime_ms(0.0, None, now) == 0


def test_authorize_response_names_the_principal_and_role(store):
    reader = store.create("reader-user", auth_pb2.ROLE_READER)
    reply = gateway_convert.authorization(Authenticator(store).check(f"Bearer {reader}"), 5000)
    assert (reply.principal, reply.role, reply.valid_for_ms) == ("reader-user", auth_pb2.ROLE_READER, 5000)
