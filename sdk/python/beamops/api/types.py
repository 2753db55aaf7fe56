"""Plain Python objects the SDK returns (never protobuf messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from google.protobuf.json_format import MessageToDict


def _time(ts) -> datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    owner: str
    tags: dict[str, str]
    created: datetime | None

    @classmethod
    def from_proto(cls, m) -> "Model":
        return cls(m.name, m.description, m.owner, dict(m.tags), _time(m.create_time))


@dataclass(frozen=True)
class ParametersVersion:
    model: str
    version: str
    model_type_version: str
    artifact_id: str
    sha256: str
    metrics: dict[str, float]
    aliases: list[str]
    created_by: str
    created: datetime | None
    lineage: dict = field(default_factory=dict)

    @classmethod
    def from_proto(cls, p) -> "ParametersVersion":
        return cls(
            model=p.model, version=p.version, model_type_version=p.model_type_version,
            artifact_id=p.primary_artifact.artifact_id, sha256=p.primary_artifact.sha256,
            metrics=dict(p.metrics), aliases=list(p.aliases), created_by=p.created_by,
            created=_time(p.create_time),
            lineage=MessageToDict(p.lineage, preserving_proto_field_name=True),
        )


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: str
    to_version: str
    actor: str
    reason: str
    time: datetime | None

    @classmethod
    def from_proto(cls, e) -> "AliasMove":
        return cls(e.model, e.alias, e.from_version, e.to_version, e.actor, e.reason, _time(e.event_time))


@dataclass(frozen=True)
class IovEntry:
    tag: str
    since: int
    model: str
    version: str
    created_by: str
    reason: str
    until: int | None = None  # exclusive end, when known (ResolveIov); None = open-ended

    @classmethod
    def from_proto(cls, e, until: int | None = None) -> "IovEntry":
        return cls(e.tag, e.since, e.parameters.model, e.parameters.version, e.created_by, e.reason,
                   until or None)


@dataclass(frozen=True)
class AuditEvent:
    event_id: int
    time: datetime | None
    actor: str
    action: str
    model: str
    resource: str
    reason: str
    details: dict[str, str]

    @classmethod
    def from_proto(cls, e) -> "AuditEvent":
        return cls(e.event_id, _time(e.event_time), e.actor, e.action, e.model, e.resource, e.reason,
                   dict(e.details))


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    version_id: str
    content_hash: str
    entries: int
    description: str
    created_by: str
    created: datetime | None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_proto(cls, v) -> "DatasetVersion":
        raw = MessageToDict(v, preserving_proto_field_name=True)
        return cls(
            dataset=v.dataset, version_id=v.version_id, content_hash=v.content_hash,
            entries=v.entry_count, description=v.description, created_by=v.created_by,
            created=_time(v.create_time), raw=raw,
        )
