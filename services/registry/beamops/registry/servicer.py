"""gRPC glue of the registry service: convert, delegate to :class:`Registry`, convert back.

Domain calls are blocking (database, files), so they run in worker threads; the caller's
principal is read here and passed to the domain explicitly.

The hot lookups (GetParametersVersion by version, ResolveAlias, ResolveIov) are answered from
the registry's read cache when they can be (memory only, on the event loop), else by one indexed
SELECT each (see lookups.py). On SQLite (a local file; WAL readers never wait for writers) that
SELECT takes less time than handing it to a worker thread and back (measured: about 0.2 ms of a
1 ms call), so with ``inline_reads`` it runs on the event loop too. On PostgreSQL it runs in a
thread, so a slow database server never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Callable

from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.auth import current_principal
from beamops.runtime.errors import InvalidArgument
from beamops.runtime.logs import request_id_var

from . import convert as c
from .entities import Caller
from .registry import Registry
from .token_admin import TokenAdmin

_DONE = object()


def _caller() -> Caller:
    return Caller(current_principal(), request_id_var.get())


async def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


#: WatchAliasEvents reads the alias events table at least this often (changes written by other
#: registry replicas sharing the database); changes made here wake it at once.
WATCH_RECHECK_S = 1.0


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    def __init__(self, registry: Registry, inline_reads: bool = False,
                 token_admin: TokenAdmin | None = None) -> None:
        self._r = registry
        self._inline_reads = inline_reads
        self._tokens = token_admin or TokenAdmin(None, registry)
        self._alias_moved = asyncio.Event()  # set (and replaced) after every alias change here

    async def _hot(self, read: Callable[..., Any], *args: Any) -> Any:
        """A hot read: from memory on the event loop if cached, else from the database."""
        if self._inline_reads:
            return read(*args)
        found = read(*args, cached_only=True)
        return found if found is not None else await _run(read, *args)

    # models
    async def CreateModel(self, req: rs.CreateModelRequest, context) -> rs.CreateModelResponse:
        m = await _run(self._r.create_model, _caller(), req.name, req.description, dict(req.tags), req.reason,
                       req.restricted)
        return rs.CreateModelResponse(model=c.model_msg(m))

    async def GetModel(self, req, context):
        return rs.GetModelResponse(model=c.model_msg(await _run(self._r.get_model, req.name)))

    async def ListModels(self, req, context):
        page = await _run(self._r.list_models, req.page_size, req.page_token, req.name_prefix, dict(req.tags))
        return rs.ListModelsResponse(models=[c.model_msg(m) for m in page.items],
                                     next_page_token=page.next_page_token)

    async def UpdateModel(self, req, context):
        restricted = req.restricted if req.HasField("restricted") else None
        m = await _run(self._r.update_model, _caller(), req.name, req.description, dict(req.tags), req.reason,
                       restricted)
        return rs.UpdateModelResponse(model=c.model_msg(m))

    async def DeleteModel(self, req, context):
        await _run(self._r.delete_model, _caller(), req.name, req.force, req.reason)
        return rs.DeleteModelResponse()

    # model types
    async def CreateModelType(self, req, context):
        t = await _run(self._r.create_model_type, _caller(), req.model, req.version, c.signature(req.signature),
                       c.framework(req.framework), c.message_dict(req.code), req.description, req.reason)
        return rs.CreateModelTypeResponse(model_type=c.model_type_msg(t))

    async def GetModelType(self, req, context):
        t = await _run(self._r.get_model_type, req.model, req.version)
        return rs.GetModelTypeResponse(model_type=c.model_type_msg(t))

    async def ListModelTypes(self, req, context):
        page = await _run(self._r.list_model_types, req.model, req.page_size, req.page_token)
        return rs.ListModelTypesResponse(model_types=[c.model_type_msg(t) for t in page.items],
                                         next_page_token=page.next_page_token)

    # artifacts
    async def UploadArtifact(self, request_iterator, context):
        caller = _caller()
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("the first message of an upload must carry the header", field="header")
        h = first.header
        upload = await _run(self._r.begin_upload, caller, h.model, c.artifact_format(h.format), h.filename,
                            h.sha256, h.size_bytes)
        try:
            async for part in request_iterator:
                if part.WhichOneof("part") != "chunk":
                    raise InvalidArgument("only the first message of an upload may carry a header", field="header")
                await _run(upload.write, part.chunk)
            artifact = await _run(self._r.finish_upload, caller, upload)
        except BaseException:
            upload.discard()
            raise
        return rs.UploadArtifactResponse(artifact=c.artifact_msg(artifact))

    async def DownloadArtifact(self, req, context):
        artifact, chunks = await _run(self._r.read_artifact, req.artifact_id, req.chunk_size)
        yield rs.DownloadArtifactResponse(artifact=c.artifact_msg(artifact))
        while (chunk := await _run(next, chunks, _DONE)) is not _DONE:
            yield rs.DownloadArtifactResponse(chunk=chunk)

    async def GetArtifact(self, req, context):
        return rs.GetArtifactResponse(artifact=c.artifact_msg(await _run(self._r.get_artifact, req.artifact_id)))

    # parameters
    async def CreateParametersVersion(self, req, context):
        p = await _run(self._r.create_parameters, _caller(), c.new_parameters(req))
        return rs.CreateParametersVersionResponse(parameters=c.parameters_msg(p))

    async def GetParametersVersion(self, req, context):
        selector = req.WhichOneof("selector")
        if selector == "version":
            p = await self._hot(self._r.get_parameters, req.model, req.version)
        elif selector == "latest_compatible_with":
            p = await _run(self._r.latest_compatible, req.model, req.latest_compatible_with)
        else:
            raise InvalidArgument("set version or latest_compatible_with", field="selector")
        return rs.GetParametersVersionResponse(parameters=c.parameters_msg(p))

    async def ListParametersVersions(self, req, context):
        page = await _run(self._r.list_parameters, c.parameters_query(req), req.page_size, req.page_token)
        return rs.ListParametersVersionsResponse(parameters=[c.parameters_msg(p) for p in page.items],
                                                 next_page_token=page.next_page_token)

    async def GetLineage(self, req, context):
        report = await _run(self._r.get_lineage, req.model, req.version)
        return rs.GetLineageResponse(chain=[c.parameters_msg(p) for p in report.chain],
                                     alias_events=[c.alias_event_msg(e) for e in report.alias_events],
                                     iov_entries=[c.iov_entry_msg(e) for e in report.iov_entries])

    # aliases
    async def SetAlias(self, req, context):
        expected = req.expected_version if req.HasField("expected_version") else None
        a = await _run(self._r.set_alias, _caller(), req.model, req.alias, req.version, expected,
                       req.protected, req.reason)
        self._wake_alias_watchers()
        return rs.SetAliasResponse(alias=c.alias_msg(a))

    async def DeleteAlias(self, req, context):
        await _run(self._r.delete_alias, _caller(), req.model, req.alias, req.reason)
        self._wake_alias_watchers()
        return rs.DeleteAliasResponse()

    def _wake_alias_watchers(self) -> None:
        moved, self._alias_moved = self._alias_moved, asyncio.Event()
        moved.set()

    async def WatchAliasEvents(self, req, context):
        after = req.after_event_id if req.HasField("after_event_id") else None
        if after is not None and after < 0:
            raise InvalidArgument("after_event_id must be >= 0", field="after_event_id")
        while True:
            moved = self._alias_moved
            after, events = await _run(self._r.alias_events_after, after)
            for event_id, event in events:
                yield rs.WatchAliasEventsResponse(event_id=event_id, event=c.alias_event_msg(event))
            if not events:
                try:
                    await asyncio.wait_for(moved.wait(), WATCH_RECHECK_S)
                except TimeoutError:
                    pass

    async def ResolveAlias(self, req, context):
        alias, p = await self._hot(self._r.resolve_alias, req.model, req.alias, c.optional_time(req, "at"))
        return rs.ResolveAliasResponse(alias=c.alias_msg(alias), parameters=c.parameters_msg(p))

    async def ListAliases(self, req, context):
        page = await _run(self._r.list_aliases, req.model, req.page_size, req.page_token)
        return rs.ListAliasesResponse(aliases=[c.alias_msg(a) for a in page.items],
                                      next_page_token=page.next_page_token)

    async def ListAliasHistory(self, req, context):
        page = await _run(self._r.alias_history, req.model, req.alias, req.page_size, req.page_token)
        return rs.ListAliasHistoryResponse(events=[c.alias_event_msg(e) for e in page.items],
                                           next_page_token=page.next_page_token)

    # intervals of validity
    async def CreateIovTag(self, req, context):
        t = await _run(self._r.create_iov_tag, _caller(), req.name, req.model, c.iov_kind(req.kind),
                       req.description, req.reason)
        return rs.CreateIovTagResponse(tag=c.iov_tag_msg(t))

    async def GetIovTag(self, req, context):
        return rs.GetIovTagResponse(tag=c.iov_tag_msg(await _run(self._r.get_iov_tag, req.name)))

    async def ListIovTags(self, req, context):
        page = await _run(self._r.list_iov_tags, req.model, req.page_size, req.page_token)
        return rs.ListIovTagsResponse(tags=[c.iov_tag_msg(t) for t in page.items],
                                      next_page_token=page.next_page_token)

    async def AppendIov(self, req, context):
        entry = await _run(self._r.append_iov, _caller(), req.tag, req.since, req.version, req.reason)
        return rs.AppendIovResponse(entry=c.iov_entry_msg(entry))

    async def ListIovs(self, req, context):
        page = await _run(self._r.list_iovs, req.tag, req.page_size, req.page_token,
                          c.optional_time(req, "snapshot_time"))
        return rs.ListIovsResponse(entries=[c.iov_entry_msg(e) for e in page.items],
                                   next_page_token=page.next_page_token)

    async def ResolveIov(self, req, context):
        snapshot = c.optional_time(req, "snapshot_time")
        if snapshot is None:
            entry, until = await self._hot(self._r.resolve_iov, req.tag, req.point)
        else:
            entry, until = await self._hot(partial(self._r.resolve_iov, snapshot=snapshot), req.tag, req.point)
        return rs.ResolveIovResponse(entry=c.iov_entry_msg(entry), until=until)

    async def CreateGlobalTag(self, req, context):
        g = await _run(self._r.create_global_tag, _caller(), req.name, list(req.tags), req.description, req.reason)
        return rs.CreateGlobalTagResponse(global_tag=c.global_tag_msg(g))

    async def GetGlobalTag(self, req, context):
        return rs.GetGlobalTagResponse(global_tag=c.global_tag_msg(await _run(self._r.get_global_tag, req.name)))

    async def ResolveGlobalTag(self, req, context):
        entries, unresolved = await _run(self._r.resolve_global_tag, req.name, req.point,
                                         c.optional_time(req, "snapshot_time"))
        return rs.ResolveGlobalTagResponse(entries=[c.iov_entry_msg(e) for e in entries],
                                           unresolved_tags=unresolved)

    # audit
    async def ListAuditEvents(self, req, context):
        page = await _run(self._r.list_audit_events, c.audit_query(req), req.page_size, req.page_token)
        return rs.ListAuditEventsResponse(events=[c.audit_event_msg(e) for e in page.items],
                                          next_page_token=page.next_page_token)

    async def RecordAuditEvent(self, req, context):
        ev = await _run(self._r.record_audit_event, _caller(), req.action, req.model, req.resource,
                        req.reason, dict(req.details))
        return rs.RecordAuditEventResponse(event=c.audit_event_msg(ev))

    # per-model permissions
    async def SetModelPermission(self, req, context):
        p = await _run(self._r.set_model_permission, _caller(), req.model, req.principal, req.role, req.reason)
        return rs.SetModelPermissionResponse(permission=c.model_permission_msg(p))

    async def ListModelPermissions(self, req, context):
        page = await _run(self._r.list_model_permissions, req.model, req.page_size, req.page_token)
        return rs.ListModelPermissionsResponse(permissions=[c.model_permission_msg(p) for p in page.items],
                                               next_page_token=page.next_page_token)

    async def RemoveModelPermission(self, req, context):
        await _run(self._r.remove_model_permission, _caller(), req.model, req.principal, req.reason)
        return rs.RemoveModelPermissionResponse()

    # tokens
    async def CreateToken(self, req, context):
        secret, info = await _run(self._tokens.create, _caller(), req.name, req.role, req.reason)
        return rs.CreateTokenResponse(token=secret, info=rs.TokenInfo(name=info.name, role=info.role))

    async def RevokeToken(self, req, context):
        await _run(self._tokens.revoke, _caller(), req.name, req.reason)
        return rs.RevokeTokenResponse()

    async def ListTokens(self, req, context):
        page = await _run(self._tokens.list, req.page_size, req.page_token)
        return rs.ListTokensResponse(tokens=[rs.TokenInfo(name=t.name, role=t.role) for t in page.items],
                                     next_page_token=page.next_page_token)
