"""Rows to domain entities and back: JSON encodings of signatures and lineage, and times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .entities import (
    Alias, AliasEvent, Artifact, AuditEvent, DatasetRef, GlobalTag, IovEntry, IovTag, Lineage,
    Model, ModelPermission, ModelType, ParametersRef, Signature, TensorSpec,
)
from .tables import (
    AliasEventRow, AliasRow, ArtifactRow, AuditEventRow, GlobalTagRow, IovTagRow, ModelPermissionRow, ModelRow,
    ModelTypeRow,
)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def signature_json(signature: Signature | None) -> dict[str, Any] | None:
    if signature is None:
        return None

    def spec(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "description": t.description}

    return {"inputs": [spec(t) for t in signature.inputs], "outputs": [spec(t) for t in signature.outputs]}


def signature_from(data: dict[str, Any] | None) -> Signature | None:
    if data is None:
        return None

    def spec(d: dict[str, Any]) -> TensorSpec:
        return TensorSpec(d["name"], d["dtype"], tuple(d["shape"]), d.get("description", ""))

    return Signature(tuple(spec(d) for d in data.get("inputs", [])),
                     tuple(spec(d) for d in data.get("outputs", [])))


def lineage_json(lineage: Lineage) -> dict[str, Any]:
    return {
        "datasets": [d.__dict__ for d in lineage.datasets],
        "training_job_id": lineage.training_job_id,
        "hyperparameters": dict(lineage.hyperparameters),
        "seed": lineage.seed,
        "code": lineage.code,
        "environment": lineage.environment,
        "parents": [p.__dict__ for p in lineage.parents],
    }


def lineage_from(data: dict[str, Any]) -> Lineage:
    return Lineage(
        datasets=tuple(DatasetRef(**d) for d in data.get("datasets", [])),
        training_job_id=data.get("training_job_id", ""),
        hyperparameters=dict(data.get("hyperparameters", {})),
        seed=int(data.get("seed", 0)),
        code=data.get("code", {}) or {},
        environment=data.get("environment", {}) or {},
        parents=tuple(ParametersRef(**p) for p in data.get("parents", [])),
    )


def model(row: ModelRow) -> Model:
    return Model(row.name, row.description, row.owner, dict(row.tags),
                 to_datetime(row.create_us), to_datetime(row.update_us), bool(row.restricted))


def model_permission(row: ModelPermissionRow, model_name: str) -> ModelPermission:
    return ModelPermission(model_name, row.principal, row.role, row.granted_by, to_datetime(row.create_us))


def model_type(row: ModelTypeRow, model_name: str) -> ModelType:
    return ModelType(
        model=model_name, version=f"{row.major}.{row.minor}.{row.patch}",
        signature=signature_from(row.signature) or Signature(), framework=row.framework,
        code=row.code or {}, description=row.description, created_by=row.created_by,
        create_time=to_datetime(row.create_us),
    )


def artifact(row: ArtifactRow, model_name: str) -> Artifact:
    return Artifact(
        artifact_id=row.artifact_id, model=model_name, format=row.format, filename=row.filename,
        sha256=row.sha256, size_bytes=row.size_bytes, signature=signature_from(row.signature),
        created_by=row.created_by, create_time=to_datetime(row.create_us),
    )


def alias(row: AliasRow, model_name: str, version: str) -> Alias:
    return Alias(model_name, row.name, version, row.protected, row.updated_by, to_datetime(row.update_us))


def alias_event(row: AliasEventRow, model_name: str) -> AliasEvent:
    return AliasEvent(model_name, row.alias, row.from_version, row.to_version, row.actor, row.reason,
                      to_datetime(row.event_us))


def iov_tag(row: IovTagRow, model_name: str) -> IovTag:
    return IovTag(row.name, model_name, row.kind, row.description, row.created_by, to_datetime(row.create_us))


def iov_entry(tag_name: str, since: int, model_name: str, version: str, created_by: str, reason: str,
              create_us: int) -> IovEntry:
    return IovEntry(tag_name, since, ParametersRef(model_name, version), created_by, reason,
                    to_datetime(create_us))


def global_tag(row: GlobalTagRow) -> GlobalTag:
    return GlobalTag(row.name, tuple(row.tags), row.description, row.created_by, to_datetime(row.create_us))


def audit_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(row.id or 0, to_datetime(row.event_us), row.actor, row.action, row.model,
                      row.resource, row.reason, dict(row.details), row.request_id)
