"""Bearer tokens: stored hashed, roles kept, revocation seen at once."""

from __future__ import annotations

import pytest

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import TokenStore, role_from_name
from beamops.runtime.errors import AlreadyExists, InvalidArgument, NotFound


def test_tokens_are_stored_hashed_and_authenticate(tmp_path):
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    token = store.create("alice", auth_pb2.ROLE_PUBLISHER)
    assert token.startswith("bmo_") and token not in path.read_text()
    principal = TokenStore(path).authenticate(token)
    assert principal.name == "alice" and principal.role == auth_pb2.ROLE_PUBLISHER
    assert principal.may(auth_pb2.ROLE_READER) and not principal.may(auth_pb2.ROLE_DEPLOYER)
    assert path.stat().st_mode & 0o777 == 0o600


def test_revocation_is_seen_by_another_store_on_the_next_call(tmp_path):
    path = tmp_path / "tokens.json"
    writer, reader = TokenStore(path), TokenStore(path)
    token = writer.create("bob", auth_pb2.ROLE_READER)
    assert reader.authenticate(token) is not None
    writer.revoke("bob")
    assert reader.authenticate(token) is None


def test_names_are_unique_and_errors_are_clear(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.create("carol", auth_pb2.ROLE_ADMIN)
    with pytest.raises(AlreadyExists):
        store.create("carol", auth_pb2.ROLE_READER)
    with pytest.raises(NotFound):
        store.revoke("nobody")
    with pytest.raises(InvalidArgument):
        store.create("bad\nname", auth_pb2.ROLE_READER)
    with pytest.raises(InvalidArgument, match="reader, publisher, deployer, admin"):
        role_from_name("superuser")
    assert role_from_name("Deployer") == auth_pb2.ROLE_DEPLOYER
