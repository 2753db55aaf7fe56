"""Job state: jobs and their numbered events, in SQLite through SQLModel (<var_dir>/training.db).

:class:`JobStore` is the interface the job manager uses; :class:`SqlJobStore` implements it.
Every event gets the next sequence number of its job (1, 2, 3, ...) in the same transaction
that updates the job, so a watcher resuming after sequence N misses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol

from sqlalchemy import Column, Index, Text, UniqueConstraint, event, func
from sqlmodel import Field, Session, SQLModel, create_engine, select

from beamops.runtime.errors import NotFound
from beamops.runtime.pages import Listing, page_size

from .spec import TrainingSpec

JOBS = Listing("training.jobs")  # keyset on (submit_us, job_id), newest first
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
REJECTED = "REJECTED"  # trained and checked, but below a quality gate of the spec: nothing registered
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED, REJECTED)


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class JobRecord:
    """A job as the domain sees it (see job.proto Job)."""

    job_id: str
    spec: TrainingSpec
    state: str
    executor: str
    submitted_by: str
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    progress: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    failure_message: str = ""
    result: dict = field(default_factory=dict)
    reproduces: str = ""
    reproduction: dict = field(default_factory=dict)
    last_event_sequence: int = 0
    cancel_requested_by: str = ""
    cancel_reason: str = ""
    idempotency_key: str = ""
    request_hash: str = ""
    worker: dict = field(default_factory=dict)
    # Trials of a search: {"index", "hyperparameters", "state", "metrics", "failure_message",
    # "start_us", "end_us", "best"}; empty for a single training.
    trials: list[dict] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class EventRecord:
    job_id: str
    sequence: int
    time: datetime
    kind: str  # "state_change", "progress", "metric", "log_line", "trial_finished"
    payload: dict


@dataclass(frozen=True)
class JobFilter:
    states: tuple[str, ...] = ()
    submitted_by: str = ""
    dataset: str = ""
    dataset_version_id: str = ""


class JobStore(Protocol):
    def create(self, job: JobRecord, first_event: tuple[str, dict]) -> JobRecord: ...
    def get(self, job_id: str) -> JobRecord: ...
    def find_by_key(self, submitted_by: str, key: str, since: datetime) -> JobRecord | None: ...
    def update(self, job_id: str, events: Iterable[tuple[str, dict]] = (), **changes: Any) -> JobRecord: ...
    def events(self, job_id: str, after: int, limit: int = 1000) -> list[EventRecord]: ...
    def list(self, filter: JobFilter, size: int, page_token: str) -> tuple[list[JobRecord], str]: ...
    def unfinished(self) -> list[JobRecord]: ...
    def unfinished_counts(self) -> dict[str, int]: ...


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_submit", "submit_us", "job_id"),
                      Index("ix_jobs_key", "submitted_by", "idempotency_key"))

    job_id: str = Field(primary_key=True)
    state: str = Field(index=True)
    executor: str
    submitted_by: str = Field(index=True)
    submit_us: int
    start_us: int | None = None
    end_us: int | None = None
    spec: str = Field(sa_column=Column(Text, nullable=False))
    progress: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    metrics: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    failure_message: str = ""
    result: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    reproduces: str = ""
    reproduction: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    last_event_sequence: int = 0
    cancel_requested_by: str = ""
    cancel_reason: str = ""
    idempotency_key: str = ""
    request_hash: str = ""
    worker: str = "{}"
    # "|dataset:version|dataset:version|", for filtering by dataset
    datasets: str = ""
    trials: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class EventRow(SQLModel, table=True):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    sequence: int
    time_us: int
    kind: str
    payload: str = Field(sa_column=Column(Text, nullable=False))


JSON_FIELDS = ("progress", "metrics", "result", "reproduction", "worker", "trials")
# Columns added after the first release: (name, SQL type and default), added to older databases.
ADDED_COLUMNS = (("trials", "TEXT NOT NULL DEFAULT '[]'"),)


def _us(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1_000_000)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, timezone.utc)


class SqlJobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(self.engine, "connect")
        def _pragmas(conn, _record) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA case_sensitive_like=ON")  # dataset names are case-sensitive
            cur.close()

        SQLModel.metadata.create_all(self.engine, tables=[JobRow.__table__, EventRow.__table__])
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A database written by an older release lacks the newer columns: add them."""
        with self.engine.begin() as conn:
            present = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(jobs)")}
            for name, definition in ADDED_COLUMNS:
                if name not in present:
                    conn.exec_driver_sql(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ conversion

    @staticmethod
    def _record(row: JobRow) -> JobRecord:
        return JobRecord(
            job_id=row.job_id, spec=TrainingSpec.from_json(row.spec), state=row.state,
            executor=row.executor, submitted_by=row.submitted_by, submit_time=_dt(row.submit_us),
            start_time=_dt(row.start_us), end_time=_dt(row.end_us),
            progress=json.loads(row.progress), metrics=json.loads(row.metrics),
            failure_message=row.failure_message, result=json.loads(row.result),
            reproduces=row.reproduces, reproduction=json.loads(row.reproduction),
            last_event_sequence=row.last_event_sequence, cancel_requested_by=row.cancel_requested_by,
            cancel_reason=row.cancel_reason, idempotency_key=row.idempotency_key,
            request_hash=row.request_hash, worker=json.loads(row.worker),
            trials=json.loads(row.trials or "[]"),
        )

    @staticmethod
    def _apply(row: JobRow, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name in ("start_time", "end_time"):
                setattr(row, name.replace("_time", "_us"), _us(value))
            elif name in JSON_FIELDS:
                setattr(row, name, json.dumps(value))
            elif name == "spec":
                row.spec = value.to_json()
            else:
                setattr(row, name, value)

    # ------------------------------------------------------------------ writes

    def create(self, job: JobRecord, first_event: tuple[str, dict]) -> JobRecord:
        row = JobRow(job_id=job.job_id, state=job.state, executor=job.executor,
                     submitted_by=job.submitted_by, submit_us=_us(job.submit_time), spec=job.spec.to_json(),
                     reproduces=job.reproduces, idempotency_key=job.idempotency_key,
                     request_hash=job.request_hash,
                     datasets="|" + "".join(f"{d.dataset}:{d.version_id}|" for d in job.spec.datasets))
        with Session(self.engine) as s:
            s.add(row)
            self._add_events(s, row, [first_event])
            s.commit()
            s.refresh(row)
            return self._record(row)

    def update(self, job_id: str, events: Iterable[tuple[str, dict]] = (), **changes: Any) -> JobRecord:
        with Session(self.engine) as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}", job=job_id)
            self._apply(row, changes)
            self._add_events(s, row, list(events))
            s.add(row)
            s.commit()
            s.refresh(row)
            return self._record(row)

    @staticmethod
    def _add_events(s: Session, row: JobRow, events: list[tuple[str, dict]]) -> None:
        t = _us(now())
        for kind, payload in events:
            row.last_event_sequence += 1
            s.add(EventRow(job_id=row.job_id, sequence=row.last_event_sequence, time_us=t, kind=kind,
                           payload=json.dumps(payload)))

    # ------------------------------------------------------------------ reads

    def get(self, job_id: str) -> JobRecord:
        with Session(self.engine) as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}", job=job_id)
            return self._record(row)

    def find_by_key(self, submitted_by: str, key: str, since: datetime) -> JobRecord | None:
        with Session(self.engine) as s:
            row = s.exec(select(JobRow).where(JobRow.submitted_by == submitted_by,
                                              JobRow.idempotency_key == key,
                                              JobRow.submit_us >= _us(since))).first()
            return self._record(row) if row is not None else None

    def events(self, job_id: str, after: int, limit: int = 1000) -> list[EventRecord]:
        with Session(self.engine) as s:
            rows = s.exec(select(EventRow).where(EventRow.job_id == job_id, EventRow.sequence > after)
                          .order_by(EventRow.sequence).limit(limit)).all()
            return [EventRecord(r.job_id, r.sequence, _dt(r.time_us), r.kind, json.loads(r.payload))
                    for r in rows]

    def list(self, filter: JobFilter, size: int, page_token: str) -> tuple[list[JobRecord], str]:
        size = page_size(size)
        after = JOBS.position(page_token, filter)  # keyset: the last (submit_us, job_id) seen
        query = select(JobRow)
        if filter.states:
            query = query.where(JobRow.state.in_(filter.states))
        if filter.submitted_by:
            query = query.where(JobRow.submitted_by == filter.submitted_by)
        if filter.dataset:
            # autoescape: a "_" in a dataset name ("ttbar_2018") is a character, not a wildcard
            needle = (f"|{filter.dataset}:{filter.dataset_version_id}|" if filter.dataset_version_id
                      else f"|{filter.dataset}:")
            query = query.where(JobRow.datasets.contains(needle, autoescape=True))
        if after is not None:
            submit_us, job_id = after
            query = query.where((JobRow.submit_us < submit_us)
                                | ((JobRow.submit_us == submit_us) & (JobRow.job_id < job_id)))
        query = query.order_by(JobRow.submit_us.desc(), JobRow.job_id.desc()).limit(size + 1)
        with Session(self.engine) as s:
            rows = s.exec(query).all()
            jobs = [self._record(r) for r in rows[:size]]
            last = rows[size - 1] if len(rows) > size else None
            token = JOBS.token([last.submit_us, last.job_id], filter) if last is not None else ""
        return jobs, token

    def unfinished(self) -> list[JobRecord]:
        with Session(self.engine) as s:
            rows = s.exec(select(JobRow).where(JobRow.state.in_((QUEUED, RUNNING)))).all()
            return [self._record(r) for r in rows]

    def unfinished_counts(self) -> dict[str, int]:
        """Queued or running jobs per submitter (for the queue caps)."""
        with Session(self.engine) as s:
            rows = s.exec(select(JobRow.submitted_by, func.count()).where(JobRow.state.in_((QUEUED, RUNNING)))
                          .group_by(JobRow.submitted_by)).all()
            return {name: int(count) for name, count in rows}


__all__ = ["JobRecord", "EventRecord", "JobFilter", "JobStore", "SqlJobStore", "replace"]
