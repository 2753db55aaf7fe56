"""The statements of the busiest write, creating a parameters version, as prebuilt SQL Core
statements run on the session's own connection (so they share its transaction).

The ORM's unit of work cost more than the database itself here (about 1.5 ms of a 2 ms create,
measured with cProfile): these statements are built once, so SQLAlchemy's compiled cache always
hits, and no ORM object is created for the rows written. The audit event goes through the same
kind of statement for every mutation (see :func:`insert_audit_event`).
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, bindparam, func, insert, select

from .tables import AuditEventRow, IdempotencyKeyRow, ModelRow, ModelTypeRow, ParametersDatasetRow, ParametersRow

_m = ModelRow.__table__
_t = ModelTypeRow.__table__
_p = ParametersRow.__table__

MODEL_FOR_UPDATE = (select(_m.c.id, _m.c.name, _m.c.owner, _m.c.restricted).where(_m.c.name == bindparam("name"))
                    .with_for_update())  # FOR UPDATE on PostgreSQL; SQLite has BEGIN IMMEDIATE
MODEL_TYPE = select(_t).where(_t.c.model_id == bindparam("model_id"), _t.c.major == bindparam("major"),
                              _t.c.minor == bindparam("minor"), _t.c.patch == bindparam("patch"))
IDEMPOTENCY_KEY = select(IdempotencyKeyRow.__table__.c.parameters_id, IdempotencyKeyRow.__table__.c.request_hash
                         ).where(IdempotencyKeyRow.__table__.c.scope == bindparam("scope"),
                                 IdempotencyKeyRow.__table__.c.key == bindparam("key"))
HIGHEST_PER_MAJOR = (select(_p.c.major, func.max(_p.c.minor)).where(_p.c.model_id == bindparam("model_id"))
                     .group_by(_p.c.major))
INSERT_VERSION = insert(_p)
INSERT_DATASET = insert(ParametersDatasetRow.__table__)
INSERT_IDEMPOTENCY_KEY = insert(IdempotencyKeyRow.__table__)
INSERT_AUDIT_EVENT = insert(AuditEventRow.__table__)


def insert_version(conn: Connection, values: dict[str, Any]) -> int:
    """Insert a parameters version row; returns its id."""
    return conn.execute(INSERT_VERSION, values).inserted_primary_key[0]


def insert_datasets(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(INSERT_DATASET, list(rows))


def insert_audit_event(conn: Connection, values: dict[str, Any]) -> int:
    return conn.execute(INSERT_AUDIT_EVENT, values).inserted_primary_key[0]
