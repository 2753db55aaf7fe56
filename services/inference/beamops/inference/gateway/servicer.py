"""gRPC glue of GatewayService, the internal contract with beamops-gateway: convert, delegate,
convert back. Only the gateway calls it, with the token the service gave it: a principal confined to
this service (``server.GATEWAY_PRINCIPAL``); its methods declare the admin role, so no other token
below admin reaches them.

It delegates to the control plane through :class:`ControlPlane` (the deployment manager is one)
and to ``resolve`` (the router's), both handed to it by the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from beamops.inference.v1 import gateway_service_pb2 as pb, gateway_service_pb2_grpc
from beamops.runtime.auth import Authenticator

from ..domain import Caller, DeploymentUsage, GatewayRoute, Route
from . import convert
from .routes import answer_lifetime_ms

#: WatchRoutes recomputes the table this often even without a change notice (a safety net: a
#: change is normally sent at once).
RECHECK_S = 1.0
#: How often WatchRoutes looks whether the tokens (or certificate mapping) changed: a revoked
#: token is refused by the gateway within this time (one stat of each file).
AUTH_CHECK_S = 0.02


class ControlPlane(Protocol):
    """What GatewayService asks of the control plane (``control.deployments.DeploymentManager``)."""

    def routes(self) -> tuple[int, tuple[GatewayRoute, ...]]: ...
    def gateway_watching(self) -> AbstractContextManager[None]: ...
    async def routes_changed(self, after_generation: int) -> int: ...
    def gateway_applied(self, generation: int) -> None: ...
    def record_usage(self, usages: Sequence[DeploymentUsage]) -> None: ...
    def restart_model(self, triton_model: str) -> None: ...


#: The name of the serving deployment a route names (``control.routing.Router.resolve``).
Resolver = Callable[[Route, Caller | None], Awaitable[str]]


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, control: ControlPlane, resolve: Resolver, authenticator: Authenticator,
                 auth_cache_s: float) -> None:
        self._control = control
        self._resolve = resolve
        self._authenticator = authenticator
        self._auth_cache_s = auth_cache_s

    async def WatchRoutes(self, req: pb.WatchRoutesRequest, context):
        sent = None
        with self._control.gateway_watching():
            loop = asyncio.get_running_loop()
            generation, routes = self._control.routes()
            recheck_at = loop.time() + RECHECK_S
            while True:
                auth = self._authenticator.revision()
                if (generation, auth) != sent:
                    yield convert.route_table(generation, routes, auth)
                    sent = (generation, auth)
                try:
                    await asyncio.wait_for(self._control.routes_changed(generation), AUTH_CHECK_S)
                except TimeoutError:
                    if loop.time() < recheck_at:
                        continue
                recheck_at = loop.time() + RECHECK_S
                generation, routes = self._control.routes()

    async def Authorize(self, req: pb.AuthorizeRequest, context) -> pb.AuthorizeResponse:
        if not req.authorization.strip() and req.client_certificate_subject:
            auth = self._authenticator.check_certificate(req.client_certificate_subject)
        else:
            auth = self._authenticator.check(req.authorization)
        return convert.authorization(auth, answer_lifetime_ms(self._auth_cache_s, auth.expires_at))

    async def Resolve(self, req: pb.ResolveRequest, context) -> pb.ResolveResponse:
        auth = self._authenticator.check(req.authorization)
        route = Route(deployment=req.deployment, model=req.model, version=req.version,
                      alias=req.alias, global_tag=req.global_tag,
                      run=req.run if req.HasField("run") else None)
        name = await self._resolve(route, Caller(auth.principal.name, req.authorization or None))
        return pb.ResolveResponse(deployment=name)

    async def ReportUsage(self, req: pb.ReportUsageRequest, context) -> pb.ReportUsageResponse:
        self._control.gateway_applied(req.routes_generation)
        self._control.record_usage(convert.usage(req))
        for triton_model in req.dead_triton_models:
            self._control.restart_model(triton_model)
        return pb.ReportUsageResponse()
