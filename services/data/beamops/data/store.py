"""Persistence of datasets, versions, files, statistics and the hash cache.

:class:`DataStore` is the interface the domain code uses; :class:`SqlDataStore` implements it
with SQLModel over SQLite (``<var_dir>/data.db``). Versions are written in one transaction with
their files, so a failed registration leaves nothing behind, and never updated afterwards
(only the list of splits with stored statistics grows).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import UniqueConstraint, event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, create_engine, func, select

from .lru import Lru
from .model import Dataset, DatasetStatistics, DatasetVersion


class DataStore(Protocol):
    def get_hash(self, path: str, size: int, mtime_ns: int) -> str | None: ...
    def put_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None: ...
    def add_version(self, version: DatasetVersion) -> tuple[DatasetVersion, bool]: ...
    def get_version(self, dataset: str, version_id: str) -> DatasetVersion | None: ...
    def list_versions(self, dataset: str, offset: int, limit: int, tags: list[str],
                      only_from_files: bool) -> list[DatasetVersion]: ...
    def get_dataset(self, name: str) -> Dataset | None: ...
    def list_datasets(self, offset: int, limit: int, prefix: str, created_by: str,
                      tags: list[str]) -> list[Dataset]: ...
    def put_statistics(self, stats: DatasetStatistics) -> None: ...
    def get_statistics(self, dataset: str, version_id: str, split: str) -> DatasetStatistics | None: ...


class DatasetRow(SQLModel, table=True):
    __tablename__ = "datasets"
    name: str = Field(primary_key=True)
    create_time: datetime
    created_by: str


class VersionRow(SQLModel, table=True):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset", "version_id"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset: str = Field(index=True, foreign_key="datasets.name")
    version_id: str = Field(index=True)
    content_hash: str
    derived: bool = False
    create_time: datetime
    created_by: str
    tags: str = "[]"
    record: str  # DatasetVersion as JSON (immutable)


class FileRow(SQLModel, table=True):
    __tablename__ = "version_files"
    id: int | None = Field(default=None, primary_key=True)
    version_pk: int = Field(index=True, foreign_key="dataset_versions.id")
    position: int
    url: str
    sha256: str = Field(index=True)
    size_bytes: int
    entry_count: int
    format: str


class StatisticsRow(SQLModel, table=True):
    __tablename__ = "statistics"
    __table_args__ = (UniqueConstraint("dataset", "version_id", "split"),)
    id: int | None = Field(default=None, primary_key=True)
    dataset: str
    version_id: str
    split: str
    compute_time: datetime
    record: str


class HashCacheRow(SQLModel, table=True):
    __tablename__ = "hash_cache"
    path: str = Field(primary_key=True)
    size: int
    mtime_ns: int
    sha256: str


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class SqlDataStore:
    """SQLModel/SQLite implementation of :class:`DataStore` (thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        url = "sqlite://" if str(path) == ":memory:" else f"sqlite:///{path}"
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(self._engine, "connect")
        def _pragmas(conn, _record):  # pragma: no cover - trivial
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA case_sensitive_like=ON")  # names are case-sensitive (prefix filters)
            cur.close()

        SQLModel.metadata.create_all(self._engine)
        self._write_lock = threading.Lock()
        # Versions are immutable but for statistics_splits (mark_statistics drops them); this
        # process is the only writer of its database.
        self._versions: Lru[tuple[str, str], DatasetVersion] = Lru(4096)
        self._changes = 0  # records rewritten so far: a read that saw an older one is not kept
        self._hashes: Lru[tuple[str, int, int], str] = Lru(65536)

    def close(self) -> None:
        self._engine.dispose()

    # -- hash cache ---------------------------------------------------------------------------

    def get_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        known = self._hashes.get((path, size, mtime_ns))
        if known is not None:
            return known
        with Session(self._engine) as s:
            row = s.get(HashCacheRow, path)
            if row and row.size == size and row.mtime_ns == mtime_ns:
                self._hashes.put((path, size, mtime_ns), row.sha256)
                return row.sha256
            return None

    def put_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self._write_lock, Session(self._engine) as s:
            s.merge(HashCacheRow(path=path, size=size, mtime_ns=mtime_ns, sha256=sha256))
            s.commit()
        self._hashes.put((path, size, mtime_ns), sha256)

    # -- versions -----------------------------------------------------------------------------

    def add_version(self, version: DatasetVersion) -> tuple[DatasetVersion, bool]:
        """Store ``version``; returns (stored version, created). An existing one wins."""
        with self._write_lock, Session(self._engine) as s:
            existing = self._version_row(s, version.dataset, version.version_id)
            if existing is not None:
                return DatasetVersion.model_validate_json(existing.record), False
            if s.get(DatasetRow, version.dataset) is None:
                s.add(DatasetRow(name=version.dataset, create_time=version.create_time,
                                 created_by=version.created_by))
                s.flush()
            row = VersionRow(
                dataset=version.dataset, version_id=version.version_id,
                content_hash=version.content_hash, derived=version.derivation is not None,
                create_time=version.create_time, created_by=version.created_by,
                tags=json.dumps(sorted(version.tags)), record=version.model_dump_json(),
            )
            s.add(row)
            s.flush()
            for i, f in enumerate(version.files):
                s.add(FileRow(version_pk=row.id, position=i, url=f.url, sha256=f.sha256,
                              size_bytes=f.size_bytes, entry_count=f.entry_count, format=f.format))
            try:
                s.commit()
            except IntegrityError:  # pragma: no cover - another process won the race
                s.rollback()
                again = self._version_row(s, version.dataset, version.version_id)
                return DatasetVersion.model_validate_json(again.record), False
            return version, True

    def mark_statistics(self, dataset: str, version_id: str, split: str) -> None:
        with self._write_lock, Session(self._engine) as s:
            row = self._version_row(s, dataset, version_id)
            if row is None:
                return
            version = DatasetVersion.model_validate_json(row.record)
            if split in version.statistics_splits:
                return
            splits = sorted({*version.statistics_splits, split})
            row.record = version.model_copy(update={"statistics_splits": splits}).model_dump_json()
            s.add(row)
            s.commit()
            self._changes += 1
            self._versions.drop((dataset, version_id))

    @staticmethod
    def _version_row(s: Session, dataset: str, version_id: str) -> VersionRow | None:
        return s.exec(select(VersionRow).where(VersionRow.dataset == dataset,
                                               VersionRow.version_id == version_id)).first()

    def get_version(self, dataset: str, version_id: str) -> DatasetVersion | None:
        known = self._versions.get((dataset, version_id))
        if known is not None:
            return known
        changes = self._changes
        with Session(self._engine) as s:
            row = self._version_row(s, dataset, version_id)
            if row is None:
                return None
            version = DatasetVersion.model_validate_json(row.record)
        with self._write_lock:  # mark_statistics counts its change under this lock
            if changes == self._changes:
                self._versions.put((dataset, version_id), version)
        return version

    def list_versions(self, dataset: str, offset: int, limit: int, tags: list[str],
                      only_from_files: bool) -> list[DatasetVersion]:
        with Session(self._engine) as s:
            q = select(VersionRow).where(VersionRow.dataset == dataset)
            if only_from_files:
                q = q.where(VersionRow.derived == False)  # noqa: E712
            for tag in tags:
                q = q.where(VersionRow.tags.contains(json.dumps(tag)))
            q = q.order_by(VersionRow.create_time.desc(), VersionRow.id.desc()).offset(offset).limit(limit)
            return [DatasetVersion.model_validate_json(r.record) for r in s.exec(q)]

    # -- datasets -----------------------------------------------------------------------------

    def get_dataset(self, name: str) -> Dataset | None:
        with Session(self._engine) as s:
            row = s.get(DatasetRow, name)
            return self._dataset(s, row) if row else None

    def list_datasets(self, offset: int, limit: int, prefix: str, created_by: str,
                      tags: list[str]) -> list[Dataset]:
        with Session(self._engine) as s:
            q = select(DatasetRow)
            if prefix:
                q = q.where(DatasetRow.name.startswith(prefix, autoescape=True))
            if created_by:
                q = q.where(DatasetRow.created_by == created_by)
            for tag in tags:
                sub = select(VersionRow.dataset).where(VersionRow.tags.contains(json.dumps(tag)))
                q = q.where(DatasetRow.name.in_(sub))
            q = q.order_by(DatasetRow.name).offset(offset).limit(limit)
            return [self._dataset(s, r) for r in s.exec(q)]

    @staticmethod
    def _dataset(s: Session, row: DatasetRow) -> Dataset:
        count = s.exec(select(func.count()).select_from(VersionRow)
                       .where(VersionRow.dataset == row.name)).one()
        latest = s.exec(select(VersionRow).where(VersionRow.dataset == row.name)
                        .order_by(VersionRow.create_time.desc(), VersionRow.id.desc())).first()
        return Dataset(
            name=row.name, create_time=_utc(row.create_time), created_by=row.created_by,
            latest_version_id=latest.version_id if latest else "",
            latest_version_create_time=_utc(latest.create_time) if latest else None,
            version_count=int(count),
        )

    # -- statistics ---------------------------------------------------------------------------

    def put_statistics(self, stats: DatasetStatistics) -> None:
        with self._write_lock, Session(self._engine) as s:
            ref = stats.version
            row = s.exec(select(StatisticsRow).where(
                StatisticsRow.dataset == ref.dataset, StatisticsRow.version_id == ref.version_id,
                StatisticsRow.split == ref.split)).first()
            if row is None:
                row = StatisticsRow(dataset=ref.dataset, version_id=ref.version_id, split=ref.split,
                                    compute_time=stats.compute_time, record="")
            row.record = stats.model_dump_json()
            row.compute_time = stats.compute_time
            s.add(row)
            s.commit()
        self.mark_statistics(ref.dataset, ref.version_id, ref.split)

    def get_statistics(self, dataset: str, version_id: str, split: str) -> DatasetStatistics | None:
        with Session(self._engine) as s:
            row = s.exec(select(StatisticsRow).where(
                StatisticsRow.dataset == dataset, StatisticsRow.version_id == version_id,
                StatisticsRow.split == split)).first()
            return DatasetStatistics.model_validate_json(row.record) if row else None
