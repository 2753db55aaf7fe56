"""The training service process: `create_server(settings)` for tests, `main()` for the command line."""

from __future__ import annotations

import sys

from beamops.training.v1 import training_service_pb2, training_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .data_client import DataClient
from .executor import DaskExecutor, LocalExecutor
from .jobs import JobManager
from .limits import JobLimits
from .registry_client import RegistryClient
from .servicer import TrainingServicer
from .settings import TrainingSettings
from .store import SqlJobStore
from .trainers import entry_point_module_exists


async def create_server(settings: TrainingSettings) -> RunningServer:
    store = SqlJobStore(settings.database_path)
    data = DataClient(settings.data_address, settings.max_message_bytes)
    registry = RegistryClient(settings.registry_address, settings.max_message_bytes)
    limits = JobLimits(settings.job_memory_limit_bytes, settings.job_cpu_limit_s)
    executors = {"local": LocalExecutor(settings.jobs_dir, settings.event_poll_interval_s,
                                        settings.cancel_grace_s, settings.local_trial_workers, limits)}
    if settings.dask_scheduler:
        executors["dask"] = DaskExecutor(settings.dask_scheduler, settings.event_poll_interval_s,
                                         security=settings.dask_security(),
                                         memory_bytes=settings.job_memory_limit_bytes)
    jobs = JobManager(
        store, data, registry, executors,
        default_executor="dask" if settings.dask_scheduler else "local",
        data_address=settings.data_address, jobs_dir=settings.jobs_dir,
        max_concurrent_jobs=settings.max_concurrent_jobs, max_message_bytes=settings.max_message_bytes,
        service_token=settings.service_token, max_trials=settings.max_trials,
        entry_point_exists=entry_point_module_exists,
        entry_point_modules=tuple(settings.entry_point_modules),
        job_timeout_s=settings.job_timeout_s, max_job_timeout_s=settings.max_job_timeout_s,
        max_queued_jobs_per_user=settings.max_queued_jobs_per_user, max_queued_jobs=settings.max_queued_jobs,
    )
    jobs.recover()
    service = Service(
        descriptor=training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
        servicer=TrainingServicer(jobs),
        add_to_server=training_service_pb2_grpc.add_TrainingServiceServicer_to_server,
    )
    running = await create_grpc_server(settings, [service])

    async def shutdown() -> None:
        await jobs.close()
        await data.close()
        await registry.close()
        store.close()

    running.on_stop.append(shutdown)
    return running


def main(argv: list[str] | None = None) -> None:
    run(TrainingSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
