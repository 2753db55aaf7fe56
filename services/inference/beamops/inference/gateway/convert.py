"""protobuf <-> domain conversion for GatewayService (no logic, no gRPC)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from beamops.common.v1 import tensor_pb2
from beamops.inference.v1 import gateway_service_pb2 as pb
from beamops.runtime.auth import Authentication
from beamops.runtime.errors import InvalidArgument
from beamops.tensors import TensorError, check_tensor

from ..convert import signature
from ..domain import DeploymentUsage, GatewayRoute, RawTensor, UsageSample

#: An ErrorInfo reason (INVALID_ARGUMENT, UNAVAILABLE, ...): the label of the errors series.
_REASON = re.compile(r"^[A-Z][A-Z_]{0,39}$")


# ---- domain -> protobuf ----------------------------------------------------------------------------

def route(r: GatewayRoute) -> pb.GatewayRoute:
    sig = signature(r.signature)
    return pb.GatewayRoute(
        deployment=r.deployment, model=r.model, parameters_version=r.parameters_version,
        triton_model=r.triton_model, inputs=sig.inputs, outputs=sig.outputs,
        max_batch_size=r.max_batch_size, drift=r.drift, following_alias=r.following_alias,
        artifact_sha256=r.artifact_sha256)


def route_table(generation: int, routes: Iterable[GatewayRoute], auth_revision: int = 0) -> pb.WatchRoutesResponse:
    return pb.WatchRoutesResponse(generation=generation, routes=[route(r) for r in routes],
                                  auth_revision=auth_revision)


def authorization(auth: Authentication, valid_for_ms: int) -> pb.AuthorizeResponse:
    return pb.AuthorizeResponse(principal=auth.principal.name, role=auth.principal.role,
                                valid_for_ms=valid_for_ms)


# ---- protobuf -> domain ----------------------------------------------------------------------------

def usage(req: pb.ReportUsageRequest) -> list[DeploymentUsage]:
    """The report as domain objects; InvalidArgument (naming the field) for an error reason that
    is not one, or a sample tensor whose dtype, shape and bytes disagree."""
    out = []
    for i, u in enumerate(req.deployments):
        for reason in u.errors:
            if not _REASON.fullmatch(reason):
                raise InvalidArgument(f"error reason {reason[:40]!r} is not an ErrorInfo reason "
                                      "(upper-case letters and '_')",
                                      field=f"deployments[{i}].errors")
        samples = tuple(
            UsageSample(_tensors(s.inputs, f"deployments[{i}].samples[{j}].inputs"),
                        _tensors(s.outputs, f"deployments[{i}].samples[{j}].outputs"))
            for j, s in enumerate(u.samples))
        out.append(DeploymentUsage(
            deployment=u.deployment, version=u.parameters_version, requests=u.requests,
            errors=tuple(sorted(u.errors.items())), latency_s=tuple(u.latency_seconds),
            batch_rows=tuple(u.batch_rows), samples=samples, coalesced=u.coalesced_requests))
    return out


def _tensors(tensors: Sequence[tensor_pb2.Tensor], field: str) -> tuple[RawTensor, ...]:
    out = []
    for k, t in enumerate(tensors):
        try:
            _, shape = check_tensor(t)
        except TensorError as exc:
            raise InvalidArgument(f"sample tensor {exc}", field=f"{field}[{k}]") from None
        out.append(RawTensor(t.name, t.dtype, shape, t.raw_data))
    return tuple(out)
