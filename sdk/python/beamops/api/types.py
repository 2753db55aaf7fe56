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
    created: datetime | None = None  # the insertion time (usable as a snapshot time)

    @classmethod
    def from_proto(cls, e, until: int | None = None) -> "IovEntry":
        return cls(e.tag, e.since, e.parameters.model, e.parameters.version, e.created_by, e.reason,
                   until or None, _time(e.create_time))


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


@dataclass(frozen=True)
class Job:
    job_id: str
    state: str
    submitted_by: str
    fraction_done: float
    metrics: dict[str, float]
    failure_message: str
    model: str
    version: str
    submitted: datetime | None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED")

    @classmethod
    def from_proto(cls, j) -> "Job":
        from beamops.training.v1 import job_pb2

        return cls(
            job_id=j.job_id, state=job_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_"),
            submitted_by=j.submitted_by, fraction_done=j.progress.fraction,
            metrics={(f"{m.split}/{m.name}" if m.split else m.name): m.value for m in j.metrics},
            failure_message=j.failure_message, model=j.result.parameters.model,
            version=j.result.parameters.version, submitted=_time(j.submit_time),
            raw=MessageToDict(j, preserving_proto_field_name=True),
        )


@dataclass(frozen=True)
class JobEvent:
    """One event of a job: kind is state, progress, metric, log or trial."""

    sequence: int
    kind: str
    state: str = ""
    fraction: float = 0.0
    metric: str = ""
    value: float = 0.0
    text: str = ""

    @classmethod
    def from_proto(cls, e) -> "JobEvent":
        from beamops.training.v1 import job_pb2

        kind = e.WhichOneof("event") or ""
        if kind == "state_change":
            state = job_pb2.JobState.Name(e.state_change.state).removeprefix("JOB_STATE_")
            return cls(e.sequence, "state", state=state, text=e.state_change.message)
        if kind == "progress":
            return cls(e.sequence, "progress", fraction=e.progress.fraction)
        if kind == "metric":
            m = e.metric.metric
            return cls(e.sequence, "metric", metric=m.name, value=m.value)
        if kind == "log_line":
            return cls(e.sequence, "log", text=e.log_line.text)
        return cls(e.sequence, kind.replace("_finished", ""))


@dataclass(frozen=True)
class Deployment:
    name: str
    model: str
    version: str
    state: str
    following_alias: str
    serving_since: datetime | None
    changed_by: str
    change_reason: str
    previous_version: str
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_proto(cls, d) -> "Deployment":
        from beamops.inference.v1 import deployment_pb2

        alias = d.target.alias if d.following_alias else ""
        return cls(
            name=d.name, model=d.model, version=d.parameters.version,
            state=deployment_pb2.DeploymentState.Name(d.state).removeprefix("DEPLOYMENT_STATE_"),
            following_alias=alias, serving_since=_time(d.serving_since), changed_by=d.changed_by,
            change_reason=d.change_reason, previous_version=d.previous_parameters.version,
            raw=MessageToDict(d, preserving_proto_field_name=True),
        )


@dataclass(frozen=True)
class Prediction:
    """Outputs of a Predict call, and what answered it."""

    outputs: dict  # name -> numpy array
    deployment: str
    model: str
    version: str


@dataclass(frozen=True)
class DriftReport:
    deployment: str
    available: bool
    unavailable_reason: str
    drifting: bool
    window_samples: int
    features: list[dict]

    @classmethod
    def from_proto(cls, r) -> "DriftReport":
        features = [MessageToDict(f, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                    for f in r.features]
        return cls(r.deployment, r.available, r.unavailable_reason, r.drifting, r.window_samples, features)
