"""Upgrading a registry that already holds data: a database made by the first schema (0001),
with a model, a type, parameters, an alias and an audit event, is migrated to the newest schema
when the registry starts, on SQLite and on PostgreSQL, and everything in it is still there."""

from __future__ import annotations


import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from beamops.common.v1 import auth_pb2
from beamops.registry.artifacts import LocalArtifactStore
from beamops.registry.entities import Caller, NewParameters, Signature
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
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
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


def test_iov_entries_under_the_old_unique_since_upgrade_and_then_take_corrections(each_registry_engine, tmp_path):
    """0004 drops the unique (tag, since) of 0001: entries written before it resolve as before,
    and a correction at an existing since is stored beside the old entry."""
    store = Store(each_registry_engine)
    migrate(store.engine, "0003")  # the schema before 0004, and an entry as the registry then wrote it
    registry = Registry(store, LocalArtifactStore(tmp_path / "art", 10**6))
    registry.create_model(ADMIN, "calo")
    registry.create_model_type(ADMIN, "calo", "1.0.0", Signature())
    for _ in range(2):
        registry.create_parameters(ADMIN, NewParameters("calo", "1.0.0"))
    registry.create_iov_tag(ADMIN, "calib", "calo", "run")
    registry.append_iov(ADMIN, "calib", 100, "1.0", reason="old")
    with store.engine.begin() as conn:
        with pytest.raises(IntegrityError):  # what 0001's constraint refused: a second entry at one since
            with conn.begin_nested():
                conn.execute(text("INSERT INTO iov_entries (tag_id, since, parameters_id, created_by, reason, "
                                  "create_us) SELECT tag_id, since, parameters_id, 'alice', '', 6 FROM iov_entries"))
    store.dispose()

    store = Store(each_registry_engine)
    store.migrate()
    registry = Registry(store, LocalArtifactStore(tmp_path / "art", 10**6))
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        old = registry.resolve_iov("calib", 150)[0]
        assert (old.since, old.parameters.version, old.reason) == (100, "1.0", "old")
        fix = registry.append_iov(ADMIN, "calib", 100, "1.1", reason="corrected")
        assert registry.resolve_iov("calib", 150)[0].parameters.version == "1.1"
        assert registry.resolve_iov("calib", 150, snapshot=old.create_time)[0].parameters.version == "1.0"
        assert [e.parameters.version for e in registry.list_iovs("calib").items] == ["1.0", "1.1"]
        assert fix.create_time > old.create_time
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
    finally:
        store.dispose()
