"""The inference service's adapter to the registry: its gRPC stub and nothing else.

Every call takes ``auth``: the ``authorization`` metadata value to send (the caller's, forwarded,
or the service's own token for background work). Registry errors come back as domain errors with
the registry's message (which follows the same no-path rule); a registry that cannot be reached
is :class:`Unavailable`. Artifacts are downloaded with their sha256 checked while streaming.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping

import grpc

from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime import errors

from ..domain import FeatureReference, ResolvedVersion, Signature, TensorSig

_CODES = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.DATA_LOSS: errors.DataLoss,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
}


def signature_of(sig) -> Signature:
    def specs(items):
        return tuple(TensorSig(name=t.name, dtype=t.dtype, shape=tuple(t.shape)) for t in items)

    return Signature(inputs=specs(sig.inputs), outputs=specs(sig.outputs))


def resolved_of(p: model_pb2.ParametersVersion, moved_by: str = "") -> ResolvedVersion:
    art = p.primary_artifact
    return ResolvedVersion(
        model=p.model, version=p.version, model_type_version=p.model_type_version,
        artifact_id=art.artifact_id, sha256=art.sha256, signature=signature_of(art.signature),
        references=tuple(
            FeatureReference(feature=d.feature, bin_edges=tuple(d.bin_edges), counts=tuple(d.counts),
                             quantile_levels=tuple(d.quantile_levels), quantiles=tuple(d.quantiles),
                             count=d.count)
            for d in p.reference_distributions),
        moved_by=moved_by,
    )


class RegistryClient:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 30.0) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._timeout = timeout_s

    async def get_version(self, model: str, version: str, auth: str | None) -> ResolvedVersion:
        req = rs.GetParametersVersionRequest(model=model, version=version)
        reply = await self._call(self._stub.GetParametersVersion, req, auth)
        return resolved_of(reply.parameters)

    async def resolve_alias(self, model: str, alias: str, auth: str | None) -> ResolvedVersion:
        reply = await self._call(self._stub.ResolveAlias,
                                 rs.ResolveAliasRequest(model=model, alias=alias), auth)
        return resolved_of(reply.parameters, moved_by=reply.alias.updated_by)

    async def resolve_global_tag(self, model: str, global_tag: str, run: int,
                                 auth: str | None) -> ResolvedVersion:
        reply = await self._call(self._stub.ResolveGlobalTag,
                                 rs.ResolveGlobalTagRequest(name=global_tag, point=run), auth)
        for entry in reply.entries:
            if entry.parameters.model == model:
                return await self.get_version(model, entry.parameters.version, auth)
        raise errors.NotFound(f"global tag {global_tag!r} has no entry for model {model!r} "
                              f"valid at run {run}", model=model, global_tag=global_tag)

    async def download(self, artifact_id: str, expected_sha256: str, auth: str | None) -> bytes:
        """The artifact's bytes; DataLoss if they do not hash to ``expected_sha256`` (or to the
        sha256 the registry announces in the first message)."""
        digest, chunks, announced = hashlib.sha256(), [], ""
        call = self._stub.DownloadArtifact(
            rs.DownloadArtifactRequest(artifact_id=artifact_id, chunk_size=4 * 1024 * 1024),
            metadata=_metadata(auth), timeout=self._timeout)
        try:
            async for part in call:
                if part.WhichOneof("part") == "artifact":
                    announced = part.artifact.sha256
                else:
                    digest.update(part.chunk)
                    chunks.append(part.chunk)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None
        actual = digest.hexdigest()
        for expected in filter(None, (expected_sha256, announced)):
            if actual != expected:
                raise errors.DataLoss(
                    f"artifact {artifact_id} does not match its sha256: expected {expected}, "
                    f"received bytes hash to {actual}; nothing was deployed",
                    artifact=artifact_id)
        return b"".join(chunks)

    async def record_audit(self, action: str, model: str, resource: str, reason: str,
                           details: Mapping[str, str], auth: str | None) -> None:
        req = rs.RecordAuditEventRequest(action=action, model=model, resource=resource,
                                         reason=reason, details=dict(details))
        await self._call(self._stub.RecordAuditEvent, req, auth)

    async def alias_events(self, after: int | None, auth: str | None) -> AsyncIterator[tuple[int, str, str]]:
        """(event id, model, alias) of every alias change the registry records after event
        ``after`` (None: from now), as they happen; ends with the stream (an error raised)."""
        req = rs.WatchAliasEventsRequest(after_event_id=after) if after is not None else rs.WatchAliasEventsRequest()
        try:
            async for reply in self._stub.WatchAliasEvents(req, metadata=_metadata(auth)):
                yield reply.event_id, reply.event.model, reply.event.alias
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None

    async def _call(self, method, request, auth: str | None):
        try:
            return await method(request, metadata=_metadata(auth), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None


def _metadata(auth: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", auth),) if auth else ()


def _error(exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable("the registry is not reachable; retry shortly")
    kind = _CODES.get(code)
    if kind is None:
        return errors.Unavailable(f"the registry failed ({code.name}); retry shortly")
    return kind(f"registry: {exc.details()}")
