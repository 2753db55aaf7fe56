"""The statements of the busiest write, creating a parameters version, as prebuilt SQL Core
statements run on the session's own connection (so they share its transaction).

The ORM's unit of work cost more than the database itself here (about 1.5 ms of a 2 ms create,
measured with cProfile): these statements are built once, so SQLAlchemy's compiled cache always
hits, and no ORM object is created for the rows written. Everything a create must read comes
back from one statement (:data:`CREATE_CONTEXT`: the model, locked; the model type; an earlier
use of the idempotency key; the highest minor of the type's major and the highest major), so a
create is one SELECT and its INSERTs: on PostgreSQL the version, its idempotency key and its audit
event are one statement (data-modifying CTEs, :func:`insert_created`), so a create costs four
round trips to the server (BEGIN, SELECT, INSERT, COMMIT) instead of eight. The audit event goes
through the same kind of statement for every mutation (see :func:`insert_audit_event`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from sqlalchemy import Connection, and_, bindparam, func, insert, select

from .tables import AuditEventRow, IdempotencyKeyRow, ModelRow, ModelTypeRow, ParametersDatasetRow, ParametersRow

_m = ModelRow.__table__
_t = ModelTypeRow.__table__
_p = ParametersRow.__table__
_k = IdempotencyKeyRow.__table__

HIGHEST_PER_MAJOR = (select(_p.c.major, func.max(_p.c.minor)).where(_p.c.model_id == bindparam("model_id"))
                     .group_by(_p.c.major))
_TOP_MINOR_OF_MAJOR = (select(func.max(_p.c.minor))
                       .where(_p.c.model_id == _m.c.id, _p.c.major == bindparam("major")).scalar_subquery())
_TOP_MAJOR = select(func.max(_p.c.major)).where(_p.c.model_id == _m.c.id).scalar_subquery()
CREATE_CONTEXT = (
    select(_m.c.id, _m.c.name, _m.c.owner, _m.c.restricted,
           _t.c.id.label("type_id"), _t.c.major.label("type_major"), _t.c.minor.label("type_minor"),
           _t.c.patch.label("type_patch"), _t.c.signature.label("type_signature"),
           _k.c.parameters_id.label("seen_parameters_id"), _k.c.request_hash.label("seen_request_hash"),
           _TOP_MINOR_OF_MAJOR.label("top_minor"), _TOP_MAJOR.label("top_major"))
    .select_from(
        _m.outerjoin(_t, and_(_t.c.model_id == _m.c.id, _t.c.major == bindparam("major"),
                              _t.c.minor == bindparam("minor"), _t.c.patch == bindparam("patch")))
        .outerjoin(_k, and_(_k.c.scope == bindparam("scope"), _k.c.key == bindparam("key"))))
    .where(_m.c.name == bindparam("name"))
    .with_for_update(of=_m)  # serializes creators of one model on PostgreSQL; SQLite: BEGIN IMMEDIATE
)
INSERT_VERSION = insert(_p)
INSERT_DATASET = insert(ParametersDatasetRow.__table__)
INSERT_IDEMPOTENCY_KEY = insert(IdempotencyKeyRow.__table__)
INSERT_AUDIT_EVENT = insert(AuditEventRow.__table__)


def insert_created(conn: Connection, version: dict[str, Any], key: dict[str, Any] | None,
                   audit: dict[str, Any]) -> int:
    """Insert a new version, the idempotency key that created it (``key`` without
    ``parameters_id``, or None) and its audit event; returns the version's id."""
    if conn.dialect.name != "postgresql":
        pid = insert_version(conn, version)
        if key is not None:
            conn.execute(INSERT_IDEMPOTENCY_KEY, dict(key, parameters_id=pid))
        insert_audit_event(conn, audit)
        return pid
    statement = _created_statement(tuple(version), tuple(key or ()), tuple(audit))
    params = {**_prefixed("v_", version), **_prefixed("k_", key or {}), **_prefixed("a_", audit)}
    return conn.execute(statement, params).scalar_one()


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in values.items()}


@lru_cache(maxsize=8)
def _created_statement(version_columns: tuple[str, ...], key_columns: tuple[str, ...],
                       audit_columns: tuple[str, ...]):
    """WITH v AS (INSERT version RETURNING id), k AS (INSERT key), a AS (INSERT audit event)
    SELECT v.id: one round trip (PostgreSQL runs every data-modifying CTE)."""
    def params(table, prefix: str, columns: tuple[str, ...]) -> dict[str, Any]:
        return {c: bindparam(prefix + c, type_=table.c[c].type) for c in columns}

    audit_table = AuditEventRow.__table__
    v = insert(_p).values(params(_p, "v_", version_columns)).returning(_p.c.id).cte("v")
    a = insert(audit_table).values(params(audit_table, "a_", audit_columns)).returning(audit_table.c.id).cte("a")
    statement = select(v.c.id).add_cte(a)
    if key_columns:
        k = insert(_k).values({**params(_k, "k_", key_columns), "parameters_id": select(v.c.id).scalar_subquery()})
        statement = statement.add_cte(k.cte("k"))
    return statement


def insert_version(conn: Connection, values: dict[str, Any]) -> int:
    """Insert a parameters version row; returns its id."""
    return conn.execute(INSERT_VERSION, values).inserted_primary_key[0]


def insert_datasets(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(INSERT_DATASET, list(rows))


def insert_audit_event(conn: Connection, values: dict[str, Any]) -> int:
    return conn.execute(INSERT_AUDIT_EVENT, values).inserted_primary_key[0]
