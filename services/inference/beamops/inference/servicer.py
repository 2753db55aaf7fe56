"""gRPC glue of the inference service: convert, delegate to the domain logic, convert back."""

from __future__ import annotations

import asyncio
import logging

from google.rpc import status_pb2

from beamops.inference.v1 import inference_service_pb2 as pb, inference_service_pb2_grpc
from beamops.runtime.auth import current_principal
from beamops.runtime.errors import InvalidArgument
from beamops.runtime.interceptors import metadata_value, status_for

from . import convert
from .alerts import AlertBook
from .deployments import Caller, DeploymentManager

log = logging.getLogger(__name__)
MAX_PAGE, DEFAULT_PAGE = 1000, 100
STREAM_IN_FLIGHT = 64


def _caller(context) -> Caller:
    return Caller(current_principal().name, metadata_value(context, "authorization") or None)


def _page(items: list, page_size: int, page_token: str) -> tuple[list, str]:
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    try:
        start = int(page_token) if page_token else 0
        if start < 0:
            raise ValueError
    except ValueError:
        raise InvalidArgument("page_token is invalid: pass next_page_token from the previous "
                              "page", field="page_token") from None
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


class InferenceServicer(inference_service_pb2_grpc.InferenceServiceServicer):
    def __init__(self, deployments: DeploymentManager, alerts: AlertBook) -> None:
        self._deployments = deployments
        self._alerts = alerts

    async def Deploy(self, req: pb.DeployRequest, context) -> pb.DeployResponse:
        dep = await self._deployments.deploy(convert.deploy_command(req), _caller(context))
        return pb.DeployResponse(deployment=convert.deployment(dep))

    async def Undeploy(self, req, context):
        dep = await self._deployments.undeploy(req.name, req.reason, _caller(context))
        return pb.UndeployResponse(deployment=convert.deployment(dep))

    async def GetDeployment(self, req, context):
        return pb.GetDeploymentResponse(deployment=convert.deployment(self._deployments.get(req.name)))

    async def ListDeployments(self, req, context):
        items = self._deployments.list(req.model, convert.state(req.state))
        page, token = _page(items, req.page_size, req.page_token)
        return pb.ListDeploymentsResponse(deployments=[convert.deployment(d) for d in page],
                                          next_page_token=token)

    async def Rollback(self, req, context):
        dep = await self._deployments.rollback(req.name, req.expected_parameters_version,
                                               req.reason, _caller(context))
        return pb.RollbackResponse(deployment=convert.deployment(dep))

    async def Predict(self, req: pb.PredictRequest, context) -> pb.PredictResponse:
        route = convert.route(req)
        # The caller (for the registry) is only needed to resolve an alias or a run.
        caller = None if route.deployment else _caller(context)
        result = await self._deployments.predict(route, req.inputs, req.output_names, caller)
        return convert.prediction(result, pb.PredictResponse())

    async def PredictStream(self, request_iterator, context):
        caller = _caller(context)
        method = "/beamops.inference.v1.InferenceService/PredictStream"
        responses: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(STREAM_IN_FLIGHT)
        in_flight: set[str] = set()
        tasks: set[asyncio.Task] = set()

        async def answer(req: pb.PredictStreamRequest) -> None:
            try:
                if not req.request_id:
                    raise InvalidArgument("request_id is required", field="request_id")
                result = await self._deployments.predict(convert.route(req), req.inputs,
                                                         req.output_names, caller)
                out = convert.prediction(result, pb.PredictStreamResponse(
                    request_id=req.request_id, status=status_pb2.Status(code=0)))
            except Exception as exc:  # noqa: BLE001 - one failing request does not end the stream
                status = status_for(exc, method, req.request_id or "-")
                detail = dict(status.trailing_metadata).get("grpc-status-details-bin")
                rich = status_pb2.Status.FromString(detail) if detail else status_pb2.Status(
                    code=status.code.value[0], message=status.details)
                out = pb.PredictStreamResponse(request_id=req.request_id, status=rich)
            finally:
                in_flight.discard(req.request_id)
                slots.release()
            await responses.put(out)

        async def read() -> None:
            async for req in request_iterator:
                await slots.acquire()  # flow control: stop reading while too many are in flight
                if req.request_id and req.request_id in in_flight:
                    slots.release()
                    exc = InvalidArgument(f"request_id {req.request_id!r} is already in flight",
                                          field="request_id")
                    status = status_for(exc, method, req.request_id)
                    await responses.put(pb.PredictStreamResponse(
                        request_id=req.request_id,
                        status=status_pb2.Status(code=status.code.value[0], message=status.details)))
                    continue
                if req.request_id:
                    in_flight.add(req.request_id)
                task = asyncio.create_task(answer(req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
            await responses.put(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await responses.get()
                if item is None:
                    break
                yield item
            await reader
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

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
        page, token = _page(items, req.page_size, req.page_token)
        return pb.ListAlertsResponse(alerts=[convert.alert(a) for a in page], next_page_token=token)

