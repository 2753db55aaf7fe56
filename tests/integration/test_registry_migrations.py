"""Upgrading a registry that already holds data: a database made by the first schema (0001),
with a model, a type, parameters, an alias and an audit event, is migrated to the newest schema
when the registry starts, on SQLite and on PostgreSQL, and everything in it is still there."""

from __future__ import annotations


import pytest
from sqlalchemy import text

from beamops.common.v1 import auth_pb2
from beamops.registry.artifacts import LocalArtifactStore
from beamops.registry.entities import Caller, NewParameters
from beamops.registry.registry import Registry
from beamops.registry.store import Store, migrate
from beamops.runtime.auth import Principal

pytestmark = pytest.mark.integration

ADMIN = Caller(Principal("alice", auth_pb2.ROLE_ADMIN))


def test_a_first_schema_database_with_data_is_upgraded_in_place(each_registry_engine, tmp_path):
    store = Store(each_registry_engine)
    migrate(store.engine, "0001")
    with store.engine.begin() as conn:  # rows as the first schema stored them
        conn.execute(text("INSERT INTO models (name, description, owner, tags, create_us, update_us) "
                          "VALUES ('calo', '', 'alice', '{}', 1, 1)"))
        conn.execute(text("INSERT INTO model_types (model_id, major, minor, patch, signature, framework, code, "
                          "description, created_by, create_us) SELECT id, 1, 0, 0, '{}', 'onnx', '{}', '', "
                          "'alice', 1 FROM models"))
    store.dispose()

    store = Store(each_registry_engine)
    store.migrate()  # what the registry does at start
    registry = Registry(store, LocalArtifactStore(tmp_path / "art", 10**6))
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
        model = registry.get_model("calo")
        assert (model.owner, model.restricted) == ("alice", False)  # 0002's column, defaulted
        version = registry.create_parameters(ADMIN, NewParameters("calo", "1.0.0"))
        registry.set_alias(ADMIN, "calo", "production", version.version)
        assert registry.resolve_alias("calo", "production")[1].version == "1.0"
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
    finally:
        store.dispose()
