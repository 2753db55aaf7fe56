"""The read cache across replicas: two registries (two processes' worth of Store, pool and cache)
on one database, SQLite file and real PostgreSQL. A change committed through one replica, or typed
by hand in SQL, is what the other replica answers next (SQLite: at once, PRAGMA data_version;
PostgreSQL: once the trigger's NOTIFY arrives). A lost listener connection turns the cache off,
never stale, and it comes back."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator

import psycopg
import pytest

from beamops.common.v1 import auth_pb2
from beamops.registry.artifacts import LocalArtifactStore
from beamops.registry.entities import Caller, NewParameters, Signature, TensorSpec
from beamops.registry.registry import Registry
from beamops.registry.store import Store
from beamops.runtime.auth import Principal

pytestmark = pytest.mark.integration

ADMIN = Caller(Principal("alice", auth_pb2.ROLE_ADMIN))


def _two_replicas(url: str, tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    made = []
    for name in ("a", "b"):
        store = Store(url)
        store.migrate()
        made.append(Registry(store, LocalArtifactStore(tmp_path / name, 10**6)))
    yield made[0], made[1]
    for registry in made:
        registry.store.dispose()


@pytest.fixture
def replicas(each_registry_engine: str, tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    yield from _two_replicas(each_registry_engine, tmp_path)


@pytest.fixture
def postgres_replicas(postgres_database: str, tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    yield from _two_replicas(postgres_database, tmp_path)


def eventually(read: Callable[[], object], expected: object, timeout_s: float = 15.0) -> None:
    """SQLite replicas agree at once; PostgreSQL ones once the notification is delivered."""
    deadline = time.monotonic() + timeout_s
    while (got := read()) != expected:
        assert time.monotonic() < deadline, f"still {got!r}, expected {expected!r}"
        time.sleep(0.01)


def _setup(a: Registry) -> None:
    a.create_model(ADMIN, "calo")
    a.create_model_type(ADMIN, "calo", "1.0.0", Signature(inputs=(TensorSpec("x", "float32", (-1, 4)),)))
    for _ in range(3):
        a.create_parameters(ADMIN, NewParameters("calo", "1.0.0"))
    a.set_alias(ADMIN, "calo", "production", "1.0")


def _production(r: Registry) -> str:
    return r.resolve_alias("calo", "production")[0].version


def test_the_other_replica_answers_from_its_cache_and_sees_a_move(replicas, each_registry_engine):
    a, b = replicas
    _setup(a)
    assert _production(b) == "1.0"
    hits = b.store.cache.hits
    # answered from memory, not the database (once the notifications of the setup have arrived)
    eventually(lambda: (_production(b), b.store.cache.hits > hits), ("1.0", True))
    a.set_alias(ADMIN, "calo", "production", "1.2", reason="rollout")
    assert _production(a) == "1.2"  # the writer reads its own write at once
    if each_registry_engine.startswith("sqlite"):
        assert _production(b) == "1.2"
    eventually(lambda: _production(b), "1.2")


def test_a_change_typed_by_hand_in_sql_is_seen(replicas, each_registry_engine):
    a, b = replicas
    _setup(a)
    assert _production(b) == "1.0"
    statement = ("UPDATE aliases SET parameters_id = (SELECT id FROM parameters_versions WHERE minor = 1) "
                 "WHERE name = 'production'")
    if each_registry_engine.startswith("sqlite"):
        with sqlite3.connect(each_registry_engine.split(":///", 1)[1]) as conn:
            conn.execute(statement)
        assert _production(b) == "1.1"
    else:
        with psycopg.connect(each_registry_engine.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute(statement)
    eventually(lambda: _production(b), "1.1")


def test_an_appended_iov_and_a_new_version_are_seen(replicas):
    a, b = replicas
    _setup(a)
    a.create_iov_tag(ADMIN, "calo-run", "calo", "run")
    a.append_iov(ADMIN, "calo-run", 1, "1.0")
    assert b.resolve_iov("calo-run", 500)[0].parameters.version == "1.0"
    a.append_iov(ADMIN, "calo-run", 400, "1.1")
    eventually(lambda: b.resolve_iov("calo-run", 500)[0].parameters.version, "1.1")
    assert b.resolve_iov("calo-run", 399) == (b.resolve_iov("calo-run", 1)[0], 400)
    a.create_parameters(ADMIN, NewParameters("calo", "1.0.0"))
    eventually(lambda: b.get_parameters("calo", "1.3").version, "1.3")


def test_a_lost_listener_turns_the_cache_off_until_it_is_back(postgres_replicas, postgres_database):
    a, b = postgres_replicas
    database_url = postgres_database
    _setup(a)
    assert _production(b) == "1.0"
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE query LIKE 'LISTEN beamops_registry_changed%'").fetchall()
    assert len(killed) == 2  # one listener per replica
    eventually(lambda: b.store.cache.generation() is None, True)  # b knows it is blind: cache off
    a.set_alias(ADMIN, "calo", "production", "1.1")  # a change b cannot be told about
    assert _production(b) == "1.1"  # off means every read goes to the database: never the stale 1.0
    eventually(lambda: b.store.cache.generation() is not None, True)  # listening again
    assert _production(b) == "1.1"
