"""protobuf <-> domain conversion for the inference service (no logic, no gRPC)."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import duration_pb2, timestamp_pb2

from beamops.common.v1 import lineage_pb2, tensor_pb2
from beamops.inference.v1 import deployment_pb2 as pb
from beamops.runtime.errors import InvalidArgument
from beamops.runtime.text import check_line

from .domain import (
    Alert, AlertState, DeployCommand, Deployment, DriftReport, FeatureDrift, ServedVersion,
    ServingConfig, Signature, State, Target, TargetKind, Thresholds,
)

def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def from_ts(value: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    try:
        return value.ToDatetime(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):  # nanos out of range, a year past 9999
        raise InvalidArgument("a timestamp is out of range (seconds within years 1..9999, "
                              "nanos within 0..999999999)", field="start_time/end_time") from None


def duration_s(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


# ---- requests -> domain --------------------------------------------------------------------------

def target(msg: pb.DeploymentTarget, present: bool) -> Target | None:
    kind = msg.WhichOneof("target") if present else None
    if kind == "parameters_version":
        return Target(kind=TargetKind.VERSION, value=msg.parameters_version)
    if kind == "alias":
        return Target(kind=TargetKind.ALIAS, value=msg.alias)
    if kind == "global_tag_run":
        return Target(kind=TargetKind.GLOBAL_TAG_RUN, value=msg.global_tag_run.global_tag,
                      run=msg.global_tag_run.run)
    return None


def serving(msg: pb.ServingConfig) -> ServingConfig:
    db = msg.dynamic_batching
    delay = None
    if db.HasField("max_queue_delay"):
        delay = int(round(duration_s(db.max_queue_delay) * 1e6))
    return ServingConfig(max_batch_size=msg.max_batch_size, instance_count=msg.instance_count,
                         dynamic_batching_disabled=db.disabled,
                         preferred_batch_sizes=tuple(db.preferred_batch_sizes),
                         max_queue_delay_us=delay)


def thresholds(msg: pb.DriftThresholds) -> Thresholds:
    default = Thresholds()
    return Thresholds(
        disabled=msg.disabled, psi=msg.psi or default.psi,
        ks_statistic=msg.ks_statistic or default.ks_statistic,
        window_size=msg.window_size or default.window_size,
        min_samples=msg.min_samples or default.min_samples,
        evaluation_interval_s=(duration_s(msg.evaluation_interval)
                               if msg.HasField("evaluation_interval")
                               else default.evaluation_interval_s))


def deploy_command(req) -> DeployCommand:
    return DeployCommand(
        model=req.model, target=target(req.target, req.HasField("target")), name=req.name,
        serving=serving(req.serving), thresholds=thresholds(req.drift_thresholds),
        replace=req.replace, return_immediately=req.return_immediately,
        reason=check_line(req.reason, "reason"),  # kept in the audit log: one line, no control character
        idempotency_key=req.idempotency_key)


def state(value: int) -> State | None:
    if value == pb.DEPLOYMENT_STATE_UNSPECIFIED:
        return None
    return State(_enum_name(pb.DeploymentState, value, "state").removeprefix("DEPLOYMENT_STATE_"))


def alert_state(value: int) -> AlertState | None:
    if value == pb.ALERT_STATE_UNSPECIFIED:
        return None
    return AlertState(_enum_name(pb.AlertState, value, "state").removeprefix("ALERT_STATE_"))


def _enum_name(enum, value: int, field: str) -> str:
    """The name of a known enum value; an unknown one (proto3 enums are open) is bad input."""
    try:
        return enum.Name(value)
    except ValueError:
        raise InvalidArgument(f"{field} {value} is not a known value", field=field) from None


# ---- domain -> protobuf ----------------------------------------------------------------------------

def signature(sig: Signature) -> tensor_pb2.Signature:
    def specs(items):
        return [tensor_pb2.TensorSpec(name=t.name, dtype=t.dtype, shape=list(t.shape)) for t in items]

    return tensor_pb2.Signature(inputs=specs(sig.inputs), outputs=specs(sig.outputs))


def _params(model: str, served: ServedVersion | None) -> lineage_pb2.ParametersRef | None:
    return lineage_pb2.ParametersRef(model=model, version=served.version) if served else None


def deployment(d: Deployment, default_max_batch: int = 64) -> pb.Deployment:
    t = d.target
    if t.kind == TargetKind.VERSION:
        tgt = pb.DeploymentTarget(parameters_version=t.value)
    elif t.kind == TargetKind.ALIAS:
        tgt = pb.DeploymentTarget(alias=t.value)
    else:
        tgt = pb.DeploymentTarget(global_tag_run=pb.GlobalTagRun(global_tag=t.value, run=t.run))
    s = d.serving
    db = pb.DynamicBatching(disabled=s.dynamic_batching_disabled,
                            preferred_batch_sizes=list(s.preferred_batch_sizes))
    if s.max_queue_delay_us is not None:
        db.max_queue_delay.FromMicroseconds(s.max_queue_delay_us)
    out = pb.Deployment(
        name=d.name, model=d.model, target=tgt, following_alias=d.following_alias,
        parameters=_params(d.model, d.current),
        state=pb.DeploymentState.Value(f"DEPLOYMENT_STATE_{d.state.value}"),
        state_message=d.state_message, serving_since=ts(d.serving_since),
        previous_parameters=_params(d.model, d.previous), created_by=d.created_by,
        create_time=ts(d.create_time), changed_by=d.changed_by, change_reason=d.change_reason,
        serving=pb.ServingConfig(max_batch_size=s.max_batch_size, instance_count=s.instance_count or 1,
                                 dynamic_batching=db),
        drift_thresholds=drift_thresholds(d.thresholds))
    if d.current is not None:
        out.model_type.model, out.model_type.version = d.model, d.current.model_type_version
        out.artifact_sha256 = d.current.sha256
        out.signature.CopyFrom(signature(d.current.signature))
    if d.next_version:
        out.next_parameters.model, out.next_parameters.version = d.model, d.next_version
    return out


def drift_thresholds(t: Thresholds) -> pb.DriftThresholds:
    out = pb.DriftThresholds(disabled=t.disabled, psi=t.psi, ks_statistic=t.ks_statistic,
                             window_size=t.window_size, min_samples=t.min_samples)
    out.evaluation_interval.FromMilliseconds(int(t.evaluation_interval_s * 1000))
    return out


def feature_drift(f: FeatureDrift) -> pb.FeatureDrift:
    return pb.FeatureDrift(
        kind=pb.FeatureKind.Value(f"FEATURE_KIND_{f.kind.value}"), tensor=f.tensor, index=f.index,
        feature=f.feature, available=f.available, unavailable_reason=f.unavailable_reason,
        psi=f.psi, ks_statistic=f.ks_statistic, ks_p_value=f.ks_p_value,
        psi_exceeded=f.psi_exceeded, ks_exceeded=f.ks_exceeded, sample_count=f.sample_count)


def drift_report(r: DriftReport) -> pb.DriftReport:
    out = pb.DriftReport(
        deployment=r.deployment, available=r.available, unavailable_reason=r.unavailable_reason,
        compute_time=ts(r.compute_time), window_size=r.window_size, window_samples=r.window_samples,
        window_start_time=ts(r.window_start_time), window_end_time=ts(r.window_end_time),
        thresholds=drift_thresholds(r.thresholds), drifting=r.drifting,
        features=[feature_drift(f) for f in r.features])
    if r.version:
        out.parameters.model, out.parameters.version = r.model, r.version
        out.reference.parameters.CopyFrom(out.parameters)
        out.reference.sample_count = r.reference_sample_count
    return out


def alert(a: Alert) -> pb.Alert:
    out = pb.Alert(
        alert_id=a.alert_id, kind=pb.AlertKind.Value(f"ALERT_KIND_{a.kind.value}"),
        severity=int(a.severity), state=pb.AlertState.Value(f"ALERT_STATE_{a.state.value}"),
        deployment=a.deployment, summary=a.summary, fire_time=ts(a.fire_time),
        resolve_time=ts(a.resolve_time))
    if a.version:
        out.parameters.model, out.parameters.version = a.model, a.version
    if a.feature_drift is not None:
        out.feature_drift.CopyFrom(feature_drift(a.feature_drift))
    return out
