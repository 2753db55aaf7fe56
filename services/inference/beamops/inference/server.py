"""The inference service process: `create_server(settings)` for tests, `main()` for the command line.

Builds the parts and hands them to each other: the store, the registry adapter (its own gRPC
channel), Triton (the bundled one, started and supervised here, or an external one), the model
repository, alerts, metrics, the deployment manager, and the servicer.
"""

from __future__ import annotations

import sys

import grpc

from beamops.inference.v1 import inference_service_pb2, inference_service_pb2_grpc
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .alerts import AlertBook
from .bundled_triton import TritonPaths
from .deployments import DeploymentManager, Options
from .malloc_tuning import tune_malloc
from .metrics import InferenceMetrics
from .model_repository import ModelRepository
from .registry_client import RegistryClient
from .servicer import InferenceServicer
from .settings import InferenceSettings
from .store import SqlStore
from .triton_backend import TritonBackend
from .triton_supervisor import TritonSupervisor


async def create_server(settings: InferenceSettings) -> RunningServer:
    repository_root = settings.resolved_model_repository
    supervisor = None
    if settings.triton_url:
        triton_url, backend_kind = settings.triton_url, "onnxruntime"
    else:
        paths = TritonPaths.from_install(settings.triton_venv.resolve(), repository_root.resolve())
        supervisor = TritonSupervisor(
            paths, settings.var_dir / "triton", grpc_port=settings.triton_grpc_port,
            http_port=settings.triton_http_port, metrics_port=settings.triton_metrics_port,
            start_timeout_s=settings.triton_start_timeout_s,
            watch_interval_s=settings.triton_watch_interval_s)
        await supervisor.start()
        triton_url, backend_kind = supervisor.grpc_url, "python"

    store = SqlStore(settings.var_dir / "inference.db")
    backend = TritonBackend(triton_url, load_timeout_s=settings.triton_load_timeout_s,
                            infer_timeout_s=settings.triton_infer_timeout_s)
    registry_channel = grpc.aio.insecure_channel(
        settings.registry_address,
        options=[("grpc.max_receive_message_length", settings.max_message_bytes)])
    registry = RegistryClient(registry_channel, settings.registry_timeout_s)
    token = settings.registry_token.get_secret_value() if settings.registry_token else None
    options = Options(default_max_batch_size=settings.default_max_batch_size,
                      intra_op_threads=settings.intra_op_threads,
                      alias_poll_interval_s=settings.alias_poll_interval_s,
                      drift_tick_s=settings.drift_tick_s,
                      coalesce_max_in_flight=settings.coalesce_max_in_flight,
                      service_auth=f"Bearer {token}" if token else None)

    metrics = InferenceMetrics()
    alerts = AlertBook(store, metrics)
    repository = ModelRepository(repository_root, backend_kind)
    manager = DeploymentManager(store, registry, backend, repository, alerts, metrics, options)
    service = Service(
        descriptor=inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
        servicer=InferenceServicer(manager, alerts),
        add_to_server=inference_service_pb2_grpc.add_InferenceServiceServicer_to_server,
    )
    try:
        running = await create_grpc_server(settings, [service])
    except BaseException:
        await registry_channel.close()
        await backend.close()
        if supervisor is not None:
            await supervisor.stop()
        raise
    metrics.register_into(running.metrics)

    if supervisor is not None:
        async def on_restart() -> None:
            await backend.reconnect()
            await manager.reload_all()

        supervisor.watch(on_restart, alerts, metrics)
    await manager.start()

    async def shutdown() -> None:
        await manager.stop()
        await backend.close()
        await registry_channel.close()
        if supervisor is not None:
            await supervisor.stop()
        store.close()

    running.on_stop.append(shutdown)
    return running


def main(argv: list[str] | None = None) -> None:
    tune_malloc()  # large tensors: reuse heap buffers instead of fresh mmap pages
    run(InferenceSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
