"""OpenID Connect / JWT bearer tokens: signature, exp, iss, aud, name and role claims."""

from __future__ import annotations

import jwt
import pytest

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import JwtVerifier, Principal, looks_like_jwt
from beamops.runtime.errors import PermissionDenied, Unauthenticated

from tests.fixtures.jwt_issuer import AUDIENCE, ISSUER, new_rsa_key


@pytest.fixture
def verifier(jwt_issuer) -> JwtVerifier:
    return JwtVerifier(jwt_issuer.jwks_path, ISSUER, AUDIENCE, "beamops_role")


def test_a_valid_token_gives_its_subject_and_role(verifier, jwt_issuer):
    assert verifier.authenticate(jwt_issuer.token("alice", "deployer")) == Principal("alice", auth_pb2.ROLE_DEPLOYER)
    # a list of roles (as Keycloak gives): the highest beamops role counts, others are ignored
    assert verifier.authenticate(jwt_issuer.token("bob", ["offline_access", "reader", "publisher"])).role == \
        auth_pb2.ROLE_PUBLISHER


def test_name_and_nested_role_claims(jwt_issuer):
    v = JwtVerifier(jwt_issuer.jwks_path, ISSUER, AUDIENCE, "realm_access.roles", "preferred_username")
    token = jwt_issuer.token("f3c1-uuid", None, preferred_username="carol", realm_access={"roles": ["admin"]})
    assert v.authenticate(token) == Principal("carol", auth_pb2.ROLE_ADMIN)
    assert v.authenticate(jwt_issuer.token("dave", None, realm_access={"roles": ["reader"]})).name == "dave"


@pytest.mark.parametrize("change, words", [
    (dict(lifetime_s=-120), "expired"),
    (dict(issuer="https://evil.example.org"), "issuer"),
    (dict(audience="someone-else"), "audience"),
    (dict(kid="unknown-key"), "key set"),
])
def test_bad_tokens_are_unauthenticated(verifier, jwt_issuer, change, words):
    with pytest.raises(Unauthenticated, match=words):
        verifier.authenticate(jwt_issuer.token(**change))


def test_a_token_signed_by_another_key_is_refused(verifier, jwt_issuer):
    forged = jwt_issuer.token("mallory", "admin", key=new_rsa_key())
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.authenticate(forged)


def test_unsigned_and_hmac_tokens_are_refused(verifier, jwt_issuer):
    claims = {"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800, "beamops_role": "admin"}
    for token in (jwt.encode(claims, None, algorithm="none"),
                  jwt.encode(claims, "a-shared-secret-of-32-bytes-or-more!!", algorithm="HS256")):
        with pytest.raises(Unauthenticated, match="algorithm"):
            verifier.authenticate(token)


def test_a_token_without_a_beamops_role_is_denied(verifier, jwt_issuer):
    with pytest.raises(PermissionDenied, match="no beamops role"):
        verifier.authenticate(jwt_issuer.token("erin", "superuser"))
    with pytest.raises(PermissionDenied):
        verifier.authenticate(jwt_issuer.token("erin", None))


def test_our_own_tokens_are_not_mistaken_for_jwts(jwt_issuer):
    assert looks_like_jwt(jwt_issuer.token())
    assert not looks_like_jwt("bmo_abc.def.ghi") and not looks_like_jwt("bmo_plain")


def test_settings_without_issuer_or_audience_are_refused(jwt_issuer):
    with pytest.raises(ValueError):
        JwtVerifier(jwt_issuer.jwks_path, "", AUDIENCE)
