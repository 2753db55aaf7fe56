"""The registry's tables (SQLModel). The schema itself is created by the Alembic migrations.

Times are stored as integer microseconds since the Unix epoch (UTC), which compare and sort the
same way on SQLite and PostgreSQL. Free-form structures (tags, metrics, lineage, signatures)
are JSON columns; what is searched by value (the dataset versions a parameters version was
trained on) also has its own indexed table.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _json(default=dict):
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


def _us(index: bool = False):
    return Field(sa_column=Column(BigInteger, nullable=False, index=index))


class ModelRow(SQLModel, table=True):
    __tablename__ = "models"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = _json()
    create_us: int = _us()
    update_us: int = _us()
    restricted: bool = False  # only owner, grantees and admins may change it (permissions.py)


class ModelTypeRow(SQLModel, table=True):
    __tablename__ = "model_types"
    __table_args__ = (UniqueConstraint("model_id", "major", "minor", "patch", name="uq_model_type_version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    major: int
    minor: int
    patch: int
    signature: dict[str, Any] = _json()
    framework: str = ""
    code: dict[str, Any] = _json()
    description: str = ""
    created_by: str = ""
    create_us: int = _us()


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"
    id: Optional[int] = Field(default=None, primary_key=True)
    artifact_id: str = Field(max_length=64, unique=True, index=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    format: str = ""
    filename: str = ""
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    signature: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_by: str = ""
    create_us: int = _us()


class ParametersRow(SQLModel, table=True):
    __tablename__ = "parameters_versions"
    __table_args__ = (UniqueConstraint("model_id", "major", "minor", name="uq_parameters_version"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    major: int
    minor: int
    model_type_id: int = Field(foreign_key="model_types.id")
    primary_artifact_id: Optional[int] = Field(default=None, foreign_key="artifacts.id")
    derived_artifact_ids: list[int] = _json(list)
    metrics: dict[str, float] = _json()
    lineage: dict[str, Any] = _json()
    description: str = ""
    tags: dict[str, str] = _json()
    reference_distributions: list[dict[str, Any]] = _json(list)
    created_by: str = ""
    create_us: int = _us(index=True)


class ParametersDatasetRow(SQLModel, table=True):
    """Which dataset versions a parameters version was trained on (for "trained on dataset X")."""

    __tablename__ = "parameters_datasets"
    id: Optional[int] = Field(default=None, primary_key=True)
    parameters_id: int = Field(foreign_key="parameters_versions.id", index=True)
    dataset: str = ""
    dataset_version_id: str = Field(max_length=200, index=True)


class AliasRow(SQLModel, table=True):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_alias_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    name: str = Field(max_length=100)
    parameters_id: int = Field(foreign_key="parameters_versions.id", index=True)
    protected: bool = False
    updated_by: str = ""
    update_us: int = _us()


class AliasEventRow(SQLModel, table=True):
    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_alias", "model_id", "alias"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    alias: str = Field(max_length=100)
    from_version: str = ""
    to_version: str = ""
    actor: str = ""
    reason: str = ""
    event_us: int = _us()


class IovTagRow(SQLModel, table=True):
    __tablename__ = "iov_tags"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    kind: str = ""
    description: str = ""
    created_by: str = ""
    create_us: int = _us()


class IovEntryRow(SQLModel, table=True):
    """One interval of validity. Several entries of a tag may share a since (a correction: the
    one inserted last counts); ``create_us`` is the insertion time, strictly increasing within a
    tag (migration 0004 dropped the old unique (tag, since))."""

    __tablename__ = "iov_entries"
    __table_args__ = (Index("ix_iov_entries_tag_since", "tag_id", "since", "create_us"),
                      Index("ix_iov_entries_tag_insertion", "tag_id", "create_us"))
    id: Optional[int] = Field(default=None, primary_key=True)
    tag_id: int = Field(foreign_key="iov_tags.id", index=True)
    since: int = Field(sa_column=Column(BigInteger, nullable=False))
    parameters_id: int = Field(foreign_key="parameters_versions.id", index=True)
    created_by: str = ""
    reason: str = ""
    create_us: int = _us()


class GlobalTagRow(SQLModel, table=True):
    __tablename__ = "global_tags"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    tags: list[str] = _json(list)
    description: str = ""
    created_by: str = ""
    create_us: int = _us()


class ModelPermissionRow(SQLModel, table=True):
    """A grant: ``principal`` may change model ``model_id`` up to ``role`` (a Role value)."""

    __tablename__ = "model_permissions"
    __table_args__ = (UniqueConstraint("model_id", "principal", name="uq_model_permission"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    principal: str = Field(max_length=200)
    role: int
    granted_by: str = ""
    create_us: int = _us()


class AuditEventRow(SQLModel, table=True):
    __tablename__ = "audit_events"
    id: Optional[int] = Field(default=None, primary_key=True)
    event_us: int = _us(index=True)
    actor: str = Field(default="", index=True)
    action: str = Field(default="", index=True)
    model: str = Field(default="", index=True)
    resource: str = ""
    reason: str = ""
    details: dict[str, str] = _json()
    request_id: str = ""


class IdempotencyKeyRow(SQLModel, table=True):
    """A create that carried an idempotency key: a retry with the same key returns its result."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    scope: str = Field(max_length=200)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    parameters_id: int = Field(foreign_key="parameters_versions.id")
    create_us: int = _us()
