"""Group commit on a real database (SQLite file and PostgreSQL): a change that fails inside a
shared transaction, even after writing, costs the other changes of its group nothing, and leaves
no trace of its own."""

from __future__ import annotations


import pytest
from sqlmodel import select

from beamops.registry.store import Store
from beamops.registry.tables import ModelRow

pytestmark = pytest.mark.integration


@pytest.fixture
def store(each_registry_engine: str):
    store = Store(each_registry_engine)
    store.migrate()
    yield store
    store.dispose()


def _add_model(name: str, then_fail: bool = False):
    def change(session):
        session.add(ModelRow(name=name, owner="alice", create_us=1, update_us=1))
        session.flush()  # written in the transaction before failing
        if then_fail:
            raise LookupError(f"{name} refused")
        return name
    return change


def test_a_failing_change_is_rolled_back_alone(store: Store):
    outcomes = store._run_group([_add_model("a"), _add_model("b", then_fail=True), _add_model("c")])
    assert [o.value for o in outcomes] == ["a", None, "c"]
    assert isinstance(outcomes[1].error, LookupError)
    with store.read() as s:
        assert sorted(s.exec(select(ModelRow.name)).all()) == ["a", "c"]


def test_a_conflict_inside_a_group_is_its_callers_alone(store: Store):
    store.write(_add_model("taken"))
    outcomes = store._run_group([_add_model("x"), _add_model("taken"), _add_model("y")])
    assert outcomes[0].value == "x" and outcomes[2].value == "y"
    assert outcomes[1].error is not None  # the unique name: retried, then refused for its caller only
    with store.read() as s:
        assert sorted(s.exec(select(ModelRow.name)).all()) == ["taken", "x", "y"]


def test_a_commit_refused_by_a_conflict_runs_the_group_again(store: Store):
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    refusals = []

    def refuse_once(connection) -> None:
        if not refusals:
            refusals.append(1)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    event.listen(store.engine, "commit", refuse_once)
    try:
        outcomes = store._run_group([_add_model("p"), _add_model("q")])
    finally:
        event.remove(store.engine, "commit", refuse_once)
    assert refusals == [1]
    assert [o.value for o in outcomes] == ["p", "q"]
    with store.read() as s:
        assert sorted(s.exec(select(ModelRow.name)).all()) == ["p", "q"]  # once each
