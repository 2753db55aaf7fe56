"""gRPC glue of the inference service: convert, delegate to the domain logic, convert back.
Predict and PredictStream are the data plane's: they pass to the gateway unchanged."""

from __future__ import annotations

import logging

from beamops.inference.v1 import inference_service_pb2 as pb, inference_service_pb2_grpc
from beamops.runtime.auth import current_principal
from beamops.runtime.errors import InvalidArgument
from beamops.runtime.interceptors import metadata_value
from beamops.runtime.pages import Listing
from beamops.runtime.text import check_line

from . import convert
from .alerts import AlertBook
from .control.deployments import DeploymentManager
from .domain import Caller
from .gateway.data_plane import DataPlane

log = logging.getLogger(__name__)
DEPLOYMENTS = Listing("inference.deployments")  # by offset, sorted by name
ALERTS = Listing("inference.alerts")  # by offset, newest first


def _caller(context) -> Caller:
    return Caller(current_principal().name, metadata_value(context, "authorization") or None)


class InferenceServicer(inference_service_pb2_grpc.InferenceServiceServicer):
    def __init__(self, deployments: DeploymentManager, alerts: AlertBook,
                 data_plane: DataPlane) -> None:
        self._deployments = deployments
        self._alerts = alerts
        self._data_plane = data_plane

    async def Deploy(self, req: pb.DeployRequest, context) -> pb.DeployResponse:
        dep = await self._deployments.deploy(convert.deploy_command(req), _caller(context))
        return pb.DeployResponse(deployment=convert.deployment(dep))

    async def Undeploy(self, req, context):
        dep = await self._deployments.undeploy(req.name, check_line(req.reason, "reason"), _caller(context))
        return pb.UndeployResponse(deployment=convert.deployment(dep))

    async def GetDeployment(self, req, context):
        return pb.GetDeploymentResponse(deployment=convert.deployment(self._deployments.get(req.name)))

    async def ListDeployments(self, req, context):
        items = self._deployments.list(req.model, convert.state(req.state))
        page, token = DEPLOYMENTS.slice(items, req.page_size, req.page_token,
                                        {"model": req.model, "state": req.state})
        return pb.ListDeploymentsResponse(deployments=[convert.deployment(d) for d in page],
                                          next_page_token=token)

    async def Rollback(self, req, context):
        dep = await self._deployments.rollback(req.name, req.expected_parameters_version,
                                               check_line(req.reason, "reason"), _caller(context))
        return pb.RollbackResponse(deployment=convert.deployment(dep))

    async def Predict(self, req: pb.PredictRequest, context) -> pb.PredictResponse:
        return await self._data_plane.predict(req, context)

    async def PredictStream(self, request_iterator, context):
        async for response in self._data_plane.predict_stream(request_iterator, context):
            yield response

    async def GetDriftReport(self, req, context):
        return pb.GetDriftReportResponse(
            report=convert.drift_report(self._deployments.drift_report(req.deployment)))

    async def WatchAlerts(self, req, context):
        if req.deployment:
            self._deployments.get(req.deployment)  # NOT_FOUND for an unknown name
        async for alert in self._alerts.watch(req.include_firing):
            if req.deployment and alert.deployment != req.deployment:
                continue
            if int(alert.severity) < req.min_severity:
                continue
            yield pb.WatchAlertsResponse(alert=convert.alert(alert))

    async def ListAlerts(self, req, context):
        start = convert.from_ts(req.start_time, req.HasField("start_time"))
        end = convert.from_ts(req.end_time, req.HasField("end_time"))
        if start and end and start > end:
            raise InvalidArgument("start_time is after end_time", field="start_time")
        items = self._alerts.list(req.deployment, req.min_severity, convert.alert_state(req.state),
                                  start, end)
        query = {"deployment": req.deployment, "min_severity": req.min_severity, "state": req.state,
                 "start_time": start, "end_time": end}
        page, token = ALERTS.slice(items, req.page_size, req.page_token, query)
        return pb.ListAlertsResponse(alerts=[convert.alert(a) for a in page], next_page_token=token)

