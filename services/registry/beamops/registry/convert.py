"""Protobuf messages to registry entities and back. Nothing else lives here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from beamops.common.v1 import lineage_pb2, tensor_pb2
from beamops.registry.v1 import audit_pb2, iov_pb2, model_pb2, registry_service_pb2 as rs
from beamops.runtime.errors import InvalidArgument

from . import entities as e


def _enum_to_name(enum, value: int, prefix: str) -> str:
    if value == 0:
        return ""
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return ""


def _name_to_enum(enum, name: str, prefix: str) -> int:
    return enum.Value(prefix + name.upper()) if name else 0


def dtype(value: int) -> str:
    return _enum_to_name(tensor_pb2.DataType, value, "DATA_TYPE_")


def artifact_format(value: int) -> str:
    return _enum_to_name(model_pb2.ArtifactFormat, value, "ARTIFACT_FORMAT_")


def framework(value: int) -> str:
    return _enum_to_name(model_pb2.Framework, value, "FRAMEWORK_")


def iov_kind(value: int) -> str:
    return _enum_to_name(iov_pb2.IovKind, value, "IOV_KIND_")


PARAMETERS_ORDERS = {
    rs.PARAMETERS_ORDER_UNSPECIFIED: "create_time_desc",
    rs.PARAMETERS_ORDER_CREATE_TIME_DESC: "create_time_desc",
    rs.PARAMETERS_ORDER_CREATE_TIME_ASC: "create_time_asc",
    rs.PARAMETERS_ORDER_METRIC_DESC: "metric_desc",
    rs.PARAMETERS_ORDER_METRIC_ASC: "metric_asc",
}


def time_from(ts: Timestamp, field: str = "time") -> datetime:
    """A request's timestamp; out of range (years 1..9999, nanos 0..999999999) is bad input."""
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument(f"{field}: nanos must be within 0..999999999", field=field)
    try:
        return datetime.fromtimestamp(ts.seconds, tz=timezone.utc) + timedelta(microseconds=ts.nanos // 1000)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument(f"{field} is out of range (years 1 to 9999)", field=field) from None


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when.astimezone(timezone.utc))
    return out


def optional_time(message, field: str) -> datetime | None:
    return time_from(getattr(message, field), field) if message.HasField(field) else None


# ------------------------------------------------------------------ to entities

def signature(msg: tensor_pb2.Signature) -> e.Signature:
    def spec(t: tensor_pb2.TensorSpec) -> e.TensorSpec:
        return e.TensorSpec(t.name, dtype(t.dtype), tuple(t.shape), t.description)

    return e.Signature(tuple(spec(t) for t in msg.inputs), tuple(spec(t) for t in msg.outputs))


def message_dict(msg) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def lineage(msg: model_pb2.Lineage) -> e.Lineage:
    return e.Lineage(
        datasets=tuple(e.DatasetRef(d.dataset, d.version_id, d.content_hash, d.split) for d in msg.datasets),
        training_job_id=msg.training_job.job_id,
        hyperparameters=dict(msg.hyperparameters),
        seed=msg.seed,
        code=message_dict(msg.code),
        environment=message_dict(msg.environment),
        parents=tuple(e.ParametersRef(p.model, p.version) for p in msg.parents),
    )


def new_parameters(req: rs.CreateParametersVersionRequest) -> e.NewParameters:
    return e.NewParameters(
        model=req.model, model_type_version=req.model_type_version,
        primary_artifact_id=req.primary_artifact_id, derived_artifact_ids=tuple(req.derived_artifact_ids),
        metrics=dict(req.metrics), lineage=lineage(req.lineage), description=req.description,
        tags=dict(req.tags), reference_distributions=tuple(message_dict(d) for d in req.reference_distributions),
        idempotency_key=req.idempotency_key, reason=req.reason,
    )


def parameters_query(req: rs.ListParametersVersionsRequest) -> e.ParametersQuery:
    return e.ParametersQuery(
        model=req.model, name_prefix=req.name_prefix, model_type_version=req.model_type_version,
        alias=req.alias, tags=dict(req.tags),
        metric_ranges=tuple((r.metric, r.min if r.HasField("min") else None, r.max if r.HasField("max") else None)
                            for r in req.metric_ranges),
        created_after=optional_time(req, "created_after"), created_before=optional_time(req, "created_before"),
        dataset_version_id=req.dataset_version_id,
        order=PARAMETERS_ORDERS.get(req.order, "create_time_desc"), order_metric=req.order_metric,
    )


def audit_query(req: rs.ListAuditEventsRequest) -> e.AuditQuery:
    return e.AuditQuery(model=req.model, actor=req.actor, action_prefix=req.action,
                        start_time=optional_time(req, "start_time"), end_time=optional_time(req, "end_time"))


# ------------------------------------------------------------------ to messages

def signature_msg(sig: e.Signature | None) -> tensor_pb2.Signature | None:
    if sig is None:
        return None

    def spec(t: e.TensorSpec) -> tensor_pb2.TensorSpec:
        return tensor_pb2.TensorSpec(name=t.name, dtype=_name_to_enum(tensor_pb2.DataType, t.dtype, "DATA_TYPE_")
                                     if t.dtype in e.DTYPES else 0, shape=list(t.shape), description=t.description)

    return tensor_pb2.Signature(inputs=[spec(t) for t in sig.inputs], outputs=[spec(t) for t in sig.outputs])


def model_msg(m: e.Model) -> model_pb2.Model:
    return model_pb2.Model(name=m.name, description=m.description, owner=m.owner, tags=m.tags,
                           create_time=ts(m.create_time), update_time=ts(m.update_time),
                           restricted=m.restricted)


def model_permission_msg(p: e.ModelPermission) -> model_pb2.ModelPermission:
    return model_pb2.ModelPermission(model=p.model, principal=p.principal, role=p.role,
                                     granted_by=p.granted_by, grant_time=ts(p.grant_time))


def model_type_msg(t: e.ModelType) -> model_pb2.ModelType:
    return model_pb2.ModelType(
        model=t.model, version=t.version, signature=signature_msg(t.signature),
        framework=_name_to_enum(model_pb2.Framework, t.framework, "FRAMEWORK_"),
        code=json_format.ParseDict(t.code, lineage_pb2.CodeRef()), description=t.description,
        created_by=t.created_by, create_time=ts(t.create_time))


def artifact_msg(a: e.Artifact) -> model_pb2.Artifact:
    return model_pb2.Artifact(
        artifact_id=a.artifact_id, model=a.model,
        format=_name_to_enum(model_pb2.ArtifactFormat, a.format, "ARTIFACT_FORMAT_"),
        filename=a.filename, sha256=a.sha256, size_bytes=a.size_bytes, signature=signature_msg(a.signature),
        created_by=a.created_by, create_time=ts(a.create_time))


def lineage_msg(lin: e.Lineage) -> model_pb2.Lineage:
    return model_pb2.Lineage(
        datasets=[lineage_pb2.DatasetVersionRef(dataset=d.dataset, version_id=d.version_id,
                                                content_hash=d.content_hash, split=d.split) for d in lin.datasets],
        training_job=lineage_pb2.JobRef(job_id=lin.training_job_id), hyperparameters=lin.hyperparameters,
        seed=lin.seed, code=json_format.ParseDict(lin.code, lineage_pb2.CodeRef()),
        environment=json_format.ParseDict(lin.environment, lineage_pb2.SoftwareEnvironment()),
        parents=[lineage_pb2.ParametersRef(model=p.model, version=p.version) for p in lin.parents])


def parameters_msg(p: e.ParametersVersion) -> model_pb2.ParametersVersion:
    return model_pb2.ParametersVersion(
        model=p.model, version=p.version, model_type_version=p.model_type_version,
        primary_artifact=artifact_msg(p.primary_artifact) if p.primary_artifact else None,
        derived_artifacts=[artifact_msg(a) for a in p.derived_artifacts], metrics=p.metrics,
        lineage=lineage_msg(p.lineage), description=p.description, tags=p.tags, aliases=list(p.aliases),
        created_by=p.created_by, create_time=ts(p.create_time),
        reference_distributions=[json_format.ParseDict(d, model_pb2.FeatureDistribution())
                                 for d in p.reference_distributions])


def alias_msg(a: e.Alias) -> model_pb2.Alias:
    return model_pb2.Alias(model=a.model, name=a.name, version=a.version, protected=a.protected,
                           updated_by=a.updated_by, update_time=ts(a.update_time))


def alias_event_msg(ev: e.AliasEvent) -> model_pb2.AliasEvent:
    return model_pb2.AliasEvent(model=ev.model, alias=ev.alias, from_version=ev.from_version,
                                to_version=ev.to_version, actor=ev.actor, reason=ev.reason,
                                event_time=ts(ev.event_time))


def iov_tag_msg(t: e.IovTag) -> iov_pb2.IovTag:
    return iov_pb2.IovTag(name=t.name, model=t.model, kind=_name_to_enum(iov_pb2.IovKind, t.kind, "IOV_KIND_"),
                          description=t.description, created_by=t.created_by, create_time=ts(t.create_time))


def iov_entry_msg(en: e.IovEntry) -> iov_pb2.IovEntry:
    return iov_pb2.IovEntry(tag=en.tag, since=en.since,
                            parameters=lineage_pb2.ParametersRef(model=en.parameters.model,
                                                                 version=en.parameters.version),
                            created_by=en.created_by, reason=en.reason, create_time=ts(en.create_time))


def global_tag_msg(g: e.GlobalTag) -> iov_pb2.GlobalTag:
    return iov_pb2.GlobalTag(name=g.name, tags=list(g.tags), description=g.description, created_by=g.created_by,
                             create_time=ts(g.create_time))


def audit_event_msg(ev: e.AuditEvent) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(event_id=ev.event_id, event_time=ts(ev.event_time), actor=ev.actor,
                                action=ev.action, model=ev.model, resource=ev.resource, reason=ev.reason,
                                details=ev.details, request_id=ev.request_id)
