"""gRPC glue of the training service: convert, delegate to the job manager, convert back."""

from __future__ import annotations

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import current_principal
from beamops.training.v1 import training_service_pb2 as ts, training_service_pb2_grpc

from . import convert
from .jobs import Caller, JobManager
from .store import JobFilter


def _caller(context) -> Caller:
    """The authenticated caller, with the bearer token to forward to the other services."""
    principal = current_principal()
    token = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and value.lower().startswith("bearer "):
            token = value[7:].strip()
    return Caller(principal.name, principal.role >= auth_pb2.ROLE_ADMIN, token)


class TrainingServicer(training_service_pb2_grpc.TrainingServiceServicer):
    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs

    async def SubmitJob(self, request: ts.SubmitJobRequest, context) -> ts.SubmitJobResponse:
        spec, named = convert.spec_from_proto(request.spec)
        job = await self.jobs.submit(_caller(context), spec, named, request.idempotency_key,
                                     request.validate_only)
        return ts.SubmitJobResponse(job=convert.job_to_proto(job))

    async def GetJob(self, request: ts.GetJobRequest, context) -> ts.GetJobResponse:
        return ts.GetJobResponse(job=convert.job_to_proto(self.jobs.get(request.job_id)))

    async def ListJobs(self, request: ts.ListJobsRequest, context) -> ts.ListJobsResponse:
        jobs, token = self.jobs.list(
            JobFilter(states=convert.states_from_proto(request.states), submitted_by=request.submitted_by,
                      dataset=request.dataset, dataset_version_id=request.dataset_version_id),
            request.page_size, request.page_token)
        return ts.ListJobsResponse(jobs=[convert.job_to_proto(j) for j in jobs], next_page_token=token)

    async def CancelJob(self, request: ts.CancelJobRequest, context) -> ts.CancelJobResponse:
        job = await self.jobs.cancel(_caller(context), request.job_id, request.reason)
        return ts.CancelJobResponse(job=convert.job_to_proto(job))

    async def WatchJob(self, request: ts.WatchJobRequest, context):
        async for event in self.jobs.watch(request.job_id, request.after_sequence, request.exclude_log_lines):
            yield ts.WatchJobResponse(event=convert.event_to_proto(event))

    async def ReproduceJob(self, request: ts.ReproduceJobRequest, context) -> ts.ReproduceJobResponse:
        job = await self.jobs.reproduce(_caller(context), request.job_id, request.tolerance,
                                        convert.EXECUTOR_NAMES.get(request.executor, ""), request.publish,
                                        request.idempotency_key)
        return ts.ReproduceJobResponse(job=convert.job_to_proto(job))
