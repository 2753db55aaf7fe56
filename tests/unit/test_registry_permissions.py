"""The per-model permission rule, and the migrations producing exactly the tables' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from beamops.common.v1 import auth_pb2 as a
from beamops.registry import store, tables
from beamops.registry.permissions import may_change
from beamops.runtime.auth import Principal

ALICE_PUB = Principal("alice", a.ROLE_PUBLISHER)
ALICE_DEP = Principal("alice", a.ROLE_DEPLOYER)
ROOT = Principal("root", a.ROLE_ADMIN)


@pytest.mark.parametrize("principal, needed, owner, restricted, grant, allowed", [
    (ALICE_PUB, a.ROLE_PUBLISHER, "bob", False, None, True),          # open model
    (ALICE_PUB, a.ROLE_DEPLOYER, "bob", False, None, False),          # global role too low
    (ALICE_PUB, a.ROLE_PUBLISHER, "bob", True, None, False),          # restricted, no grant
    (ALICE_PUB, a.ROLE_PUBLISHER, "alice", True, None, True),         # owner
    (ROOT, a.ROLE_DEPLOYER, "bob", True, None, True),                 # admin
    (ALICE_PUB, a.ROLE_PUBLISHER, "bob", True, a.ROLE_PUBLISHER, True),
    (ALICE_PUB, a.ROLE_PUBLISHER, "bob", True, a.ROLE_READER, False),  # grant below the need
    (ALICE_PUB, a.ROLE_DEPLOYER, "bob", True, a.ROLE_ADMIN, False),    # a grant never raises the role
    (ALICE_DEP, a.ROLE_DEPLOYER, "bob", True, a.ROLE_PUBLISHER, False),
    (ALICE_DEP, a.ROLE_DEPLOYER, "bob", True, a.ROLE_DEPLOYER, True),
    (ALICE_PUB, a.ROLE_DEPLOYER, "alice", True, None, False),          # even the owner needs the role
])
def test_may_change(principal, needed, owner, restricted, grant, allowed):
    assert may_change(principal, needed, owner, restricted, grant) is allowed


def test_migrations_build_exactly_the_tables_schema(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    store.migrate(engine)
    ours = {v.__table__.name for v in vars(tables).values() if isinstance(v, type) and hasattr(v, "__table__")}
    # SQLModel's metadata is shared by every service imported in this process: compare ours only.
    only_ours = {"include_object": lambda obj, name, kind, reflected, other: kind != "table" or name in ours}
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts=only_ours), tables.metadata) == []
    assert "model_permissions" in inspect(engine).get_table_names()
    engine.dispose()
