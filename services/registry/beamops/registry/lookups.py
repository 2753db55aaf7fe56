"""The hot reads (resolve an alias, resolve an IOV, get a parameters version), one joined SQL
statement each, run on a plain connection without an ORM session.

These calls sit on the path of every inference request, so each is a single SELECT (plus one
more only when a version has derived artifacts): the model, the version, its model type, its
primary artifact and the names of its aliases come back in one row. The statements are built once
per dialect, so SQLAlchemy's compiled cache always hits. Their results are kept by the
registry's read cache (read_cache.py), which every committed change invalidates. An IOV tag is
read whole (its timeline, up to ``TIMELINE_LIMIT`` entries, with their insertion times) so that
any point resolves from memory, now or at a snapshot time; a bigger tag is resolved point by
point in SQL.

IOV resolution (CondDB's rule): the entries that count are those inserted at or before the
snapshot time (all of them without one); of those with since <= point the greatest since wins,
and of several with that since the one inserted last; ``until`` is the next greater since among
the entries that count.

A statement that finds no row returns ``None``; the caller then asks the slower, precise lookups
which part is missing, so error messages stay the same.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import Connection, Select, bindparam, func, literal_column, select

from . import records
from .entities import Alias, Artifact, IovEntry, ParametersVersion
from .tables import AliasRow, ArtifactRow, IovEntryRow, IovTagRow, ModelRow, ModelTypeRow, ParametersRow

_m = ModelRow.__table__
_p = ParametersRow.__table__
_t = ModelTypeRow.__table__
_a = AliasRow.__table__
_art = ArtifactRow.__table__
_tag = IovTagRow.__table__
_e = IovEntryRow.__table__

TIMELINE_LIMIT = 10_000
#: "No snapshot": every entry counts (insertion times are microseconds, far below this).
NO_SNAPSHOT = 2**63 - 1

_ARTIFACT_COLUMNS = ("artifact_id", "format", "filename", "sha256", "size_bytes", "signature",
                     "created_by", "create_us")


class Lookups:
    """The hot read statements for one SQL dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str) -> None:
        aliases_of_version = _aliases_of_version(dialect)
        version_columns = [
            _m.c.name.label("model_name"), _p.c.id.label("p_id"), _p.c.major.label("p_major"),
            _p.c.minor.label("p_minor"), _p.c.derived_artifact_ids, _p.c.metrics, _p.c.lineage,
            _p.c.description.label("p_description"), _p.c.tags.label("p_tags"),
            _p.c.reference_distributions, _p.c.created_by.label("p_created_by"),
            _p.c.create_us.label("p_create_us"), _t.c.major.label("t_major"),
            _t.c.minor.label("t_minor"), _t.c.patch.label("t_patch"),
            aliases_of_version.label("alias_names"),
            *(_art.c[name].label(f"art_{name}") for name in _ARTIFACT_COLUMNS),
        ]

        self._alias: Select = (
            select(_a.c.name.label("alias_name"), _a.c.protected, _a.c.updated_by, _a.c.update_us,
                   *version_columns)
            .select_from(_a.join(_m, _m.c.id == _a.c.model_id).join(_p, _p.c.id == _a.c.parameters_id)
                         .join(_t, _t.c.id == _p.c.model_type_id)
                         .outerjoin(_art, _art.c.id == _p.c.primary_artifact_id))
            .where(_m.c.name == bindparam("model"), _a.c.name == bindparam("alias"))
        )
        self._version: Select = (
            select(*version_columns)
            .select_from(_m.join(_p, _p.c.model_id == _m.c.id)
                         .join(_t, _t.c.id == _p.c.model_type_id)
                         .outerjoin(_art, _art.c.id == _p.c.primary_artifact_id))
            .where(_m.c.name == bindparam("model"), _p.c.major == bindparam("major"),
                   _p.c.minor == bindparam("minor"))
        )
        e_next = _e.alias("e_next")
        until = (select(func.min(e_next.c.since))
                 .where(e_next.c.tag_id == _e.c.tag_id, e_next.c.since > _e.c.since,
                        e_next.c.create_us <= bindparam("snapshot"))
                 .scalar_subquery())
        self._iov: Select = (
            select(_e.c.since, _e.c.created_by, _e.c.reason, _e.c.create_us, _p.c.major, _p.c.minor,
                   _m.c.name.label("model_name"), until.label("until"))
            .select_from(_tag.join(_e, _e.c.tag_id == _tag.c.id)
                         .join(_p, _p.c.id == _e.c.parameters_id)
                         .join(_m, _m.c.id == _tag.c.model_id))
            .where(_tag.c.name == bindparam("tag"), _e.c.since <= bindparam("point"),
                   _e.c.create_us <= bindparam("snapshot"))
            .order_by(_e.c.since.desc(), _e.c.create_us.desc(), _e.c.id.desc())
            .limit(1)
        )
        self._timeline: Select = (
            select(_e.c.since, _e.c.created_by, _e.c.reason, _e.c.create_us, _p.c.major, _p.c.minor,
                   _m.c.name.label("model_name"))
            .select_from(_tag.join(_e, _e.c.tag_id == _tag.c.id)
                         .join(_p, _p.c.id == _e.c.parameters_id)
                         .join(_m, _m.c.id == _tag.c.model_id))
            .where(_tag.c.name == bindparam("tag"))
            .order_by(_e.c.since, _e.c.create_us, _e.c.id)
            .limit(TIMELINE_LIMIT + 1)
        )
        self._artifacts: Select = (
            select(_art.c.id, *(_art.c[name] for name in _ARTIFACT_COLUMNS))
            .where(_art.c.id.in_(bindparam("ids", expanding=True)))
        )

    def resolve_alias(self, conn: Connection, model: str, alias: str) -> tuple[Alias, ParametersVersion] | None:
        row = conn.execute(self._alias, {"model": model, "alias": alias}).first()
        if row is None:
            return None
        version = self._parameters(conn, row)
        return (Alias(model, row.alias_name, version.version, bool(row.protected), row.updated_by,
                      records.to_datetime(row.update_us)), version)

    def get_parameters(self, conn: Connection, model: str, major: int, minor: int) -> ParametersVersion | None:
        row = conn.execute(self._version, {"model": model, "major": major, "minor": minor}).first()
        return None if row is None else self._parameters(conn, row)

    def resolve_iov(self, conn: Connection, tag: str, point: int,
                    snapshot_us: int | None = None) -> tuple[IovEntry, int] | None:
        """The entry valid at ``point`` among those inserted by ``snapshot_us`` (None: all)."""
        snapshot = NO_SNAPSHOT if snapshot_us is None else snapshot_us
        row = conn.execute(self._iov, {"tag": tag, "point": point, "snapshot": snapshot}).first()
        if row is None:
            return None
        return (records.iov_entry(tag, row.since, row.model_name, f"{row.major}.{row.minor}",
                                  row.created_by, row.reason, row.create_us), row.until or 0)

    def iov_timeline(self, conn: Connection, tag: str) -> "IovTimeline | None":
        """Every entry of ``tag`` in order of (since, insertion) (None if it has none); a tag with
        more than ``TIMELINE_LIMIT`` entries gives an empty timeline marked ``too_long``."""
        rows = conn.execute(self._timeline, {"tag": tag}).all()
        if not rows:
            return None
        if len(rows) > TIMELINE_LIMIT:
            return IovTimeline((), too_long=True)
        return IovTimeline(tuple(
            (r.since, r.create_us, records.iov_entry(tag, r.since, r.model_name, f"{r.major}.{r.minor}",
                                                     r.created_by, r.reason, r.create_us)) for r in rows))

    def _parameters(self, conn: Connection, row: Any) -> ParametersVersion:
        model = row.model_name
        derived: tuple[Artifact, ...] = ()
        if row.derived_artifact_ids:
            found = {r.id: _artifact(r, model, "") for r in conn.execute(
                self._artifacts, {"ids": list(row.derived_artifact_ids)})}
            derived = tuple(found[i] for i in row.derived_artifact_ids if i in found)
        names = sorted(row.alias_names.split(",")) if row.alias_names else []
        return ParametersVersion(
            model=model, version=f"{row.p_major}.{row.p_minor}",
            model_type_version=f"{row.t_major}.{row.t_minor}.{row.t_patch}",
            primary_artifact=_artifact(row, model, "art_") if row.art_artifact_id else None,
            derived_artifacts=derived, metrics=dict(row.metrics),
            lineage=records.lineage_from(row.lineage), description=row.p_description,
            tags=dict(row.p_tags), aliases=tuple(names), created_by=row.p_created_by,
            create_time=records.to_datetime(row.p_create_us),
            reference_distributions=tuple(row.reference_distributions),
        )


#: How many snapshot views one timeline keeps (a reprocessing campaign uses one or a few).
SNAPSHOT_VIEWS = 8


@dataclass(frozen=True)
class IovTimeline:
    """The entries of one IOV tag as ``(since, insertion_us, entry)``, sorted by (since,
    insertion), resolved in memory now or at any snapshot time (module docstring: the rule)."""

    rows: tuple[tuple[int, int, Any], ...]
    too_long: bool = False
    _views: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_latest_us", max((r[1] for r in self.rows), default=0))
        object.__setattr__(self, "_now", _view(self.rows))
        object.__setattr__(self, "_views_lock", threading.Lock())

    def resolve(self, point: int, snapshot_us: int | None = None) -> tuple[Any, int] | None:
        """The entry valid at ``point`` and the next since (0 if none), counting only the
        entries inserted at or before ``snapshot_us`` (None: all)."""
        if snapshot_us is None or snapshot_us >= self._latest_us:
            sinces, entries = self._now
        else:
            view = self._views.get(snapshot_us)
            if view is None:
                view = _view([r for r in self.rows if r[1] <= snapshot_us])
                with self._views_lock:
                    if len(self._views) >= SNAPSHOT_VIEWS:
                        self._views.pop(next(iter(self._views)))
                    self._views[snapshot_us] = view
            sinces, entries = view
        i = bisect_right(sinces, point) - 1
        if i < 0:
            return None
        return entries[i], sinces[i + 1] if i + 1 < len(sinces) else 0


def _view(rows: Sequence[tuple[int, int, Any]]) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """The effective timeline of rows sorted by (since, insertion): for each since the entry
    inserted last (a correction covers what it corrects)."""
    last: dict[int, Any] = {}
    for since, _inserted, entry in rows:
        last[since] = entry  # sorted: the latest insertion of a since comes last
    return tuple(last), tuple(last.values())


def _aliases_of_version(dialect: str):
    """The comma-joined names of the aliases pointing at the row's version (names never hold
    commas: see names.py)."""
    other = _a.alias("a_of_version")
    if dialect == "postgresql":
        agg = func.string_agg(other.c.name, literal_column("','"))
    else:
        agg = func.group_concat(other.c.name, literal_column("','"))
    return select(agg).where(other.c.parameters_id == _p.c.id).scalar_subquery()


def _artifact(row: Any, model: str, prefix: str) -> Artifact:
    def get(name: str) -> Any:
        return getattr(row, prefix + name)

    return Artifact(
        artifact_id=get("artifact_id"), model=model, format=get("format"), filename=get("filename"),
        sha256=get("sha256"), size_bytes=get("size_bytes"), signature=records.signature_from(get("signature")),
        created_by=get("created_by"), create_time=records.to_datetime(get("create_us")),
    )
