"""What a registry left on disk and in its database, read directly (not through the service)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.fixtures.registry_process import RegistryProcess


@dataclass
class Storage:
    artifact_sha256: list[str]         # one per artifact row
    versions: int                      # parameters_versions rows
    create_audit_events: int           # audit events "parameters.create"
    idempotency_keys: int
    versions_without_artifact: int     # versions whose primary artifact row is missing
    blobs: dict[str, Path]             # blob files, by name
    temp_files: list[Path]             # leftovers of uploads in progress
    integrity: list[str]               # SQLite: PRAGMA integrity_check + foreign_key_check problems

    @property
    def orphan_blobs(self) -> set[str]:
        return set(self.blobs) - set(self.artifact_sha256)

    @property
    def missing_blobs(self) -> set[str]:
        return set(self.artifact_sha256) - set(self.blobs)

    def corrupt_blobs(self) -> list[str]:
        return [name for name, path in self.blobs.items()
                if hashlib.sha256(path.read_bytes()).hexdigest() != name]


def inspect(proc: RegistryProcess) -> Storage:
    engine = create_engine(proc.database_url)
    try:
        with engine.connect() as conn:
            shas = list(conn.execute(text("SELECT sha256 FROM artifacts")).scalars())
            versions = conn.execute(text("SELECT count(*) FROM parameters_versions")).scalar_one()
            audits = conn.execute(text(
                "SELECT count(*) FROM audit_events WHERE action = 'parameters.create'")).scalar_one()
            keys = conn.execute(text("SELECT count(*) FROM idempotency_keys")).scalar_one()
            dangling = conn.execute(text(
                "SELECT count(*) FROM parameters_versions p LEFT JOIN artifacts a "
                "ON a.id = p.primary_artifact_id WHERE a.id IS NULL")).scalar_one()
            integrity: list[str] = []
            if engine.dialect.name == "sqlite":
                result = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    integrity += result
                integrity += [str(tuple(row)) for row in conn.exec_driver_sql("PRAGMA foreign_key_check")]
    finally:
        engine.dispose()
    blobs_root = proc.artifacts_dir / "blobs"
    tmp_root = proc.artifacts_dir / "tmp"
    blobs = {p.name: p for p in blobs_root.glob("*/*/*") if p.is_file()} if blobs_root.exists() else {}
    temp = [p for p in tmp_root.iterdir()] if tmp_root.exists() else []
    return Storage(shas, versions, audits, keys, dangling, blobs, temp, integrity)
