"""gRPC glue of GatewayService, the internal contract with beamops-gateway: convert, delegate,
convert back. Only the gateway calls it (admin role: the token the service gave it)."""

from __future__ import annotations

import asyncio

from beamops.inference.v1 import gateway_service_pb2 as pb, gateway_service_pb2_grpc
from beamops.runtime.auth import Authenticator

from . import gateway_convert as convert
from .deployments import DeploymentManager
from .gateway_control import answer_lifetime_ms

#: WatchRoutes recomputes the table this often even without a change notice (a safety net: a
#: change is normally sent at once).
RECHECK_S = 1.0


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, deployments: DeploymentManager, authenticator: Authenticator,
                 auth_cache_s: float) -> None:
        self._deployments = deployments
        self._authenticator = authenticator
        self._auth_cache_s = auth_cache_s

    async def WatchRoutes(self, req: pb.WatchRoutesRequest, context):
        sent = None
        with self._deployments.gateway_watching():
            while True:
                generation, routes = self._deployments.routes()
                if generation != sent:
                    yield convert.route_table(generation, routes)
                    sent = generation
                try:
                    await asyncio.wait_for(self._deployments.routes_changed(generation), RECHECK_S)
                except TimeoutError:
                    pass

    async def Authorize(self, req: pb.AuthorizeRequest, context) -> pb.AuthorizeResponse:
        auth = self._authenticator.check(req.authorization)
        return convert.authorization(auth, answer_lifetime_ms(self._auth_cache_s, auth.expires_at))

    async def ReportUsage(self, req: pb.ReportUsageRequest, context) -> pb.ReportUsageResponse:
        self._deployments.gateway_applied(req.routes_generation)
        self._deployments.record_usage(convert.usage(req))
        for triton_model in req.dead_triton_models:
            self._deployments.restart_model(triton_model)
        return pb.ReportUsageResponse()
