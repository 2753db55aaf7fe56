"""The inference service process: `create_server(settings)` for tests, `main()` for the command line.

Builds the parts and hands them to each other: the store, the registry adapter (its own gRPC
channel), Triton (the bundled one, or an external one), the model repository, alerts, metrics,
the deployment manager, the router, and the servicers. It then starts beamops-gateway, the data
plane, in front of itself; the returned server's ``gateway_port`` and ``gateway_address`` say
where it listens. The bundled Triton runs inside that gateway's process (``triton_in_gateway``,
the default), else as a tritonserver process started and supervised here. The deployments are
restored once Triton runs.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys

import grpc

from beamops.common.v1 import auth_pb2
from beamops.inference.v1 import (
    gateway_service_pb2, gateway_service_pb2_grpc, inference_service_pb2,
    inference_service_pb2_grpc,
)
from beamops.runtime.auth import Principal, authenticator_for
from beamops.runtime.server import RunningServer, Service, create_grpc_server, run

from .alerts import AlertBook
from .control.deployments import DeploymentManager, Options
from .control.registry_client import RegistryClient
from .control.routing import Router
from .gateway.data_plane import DataPlane
from .gateway.servicer import GatewayServicer
from .gateway.supervisor import (
    EmbeddedTriton, GatewaySupervisor, GatewayTls, local_address, missing_binary_message,
)
from .malloc_tuning import tune_malloc
from .metrics import InferenceMetrics
from .servicer import InferenceServicer
from .settings import InferenceSettings
from .store import SqlStore
from .triton.backend import TritonBackend
from .triton.bundled import TritonPaths
from .triton.repository import ModelRepository
from .triton.supervisor import TritonSupervisor, free_port


#: Who the gateway is to this service (its token is valid in this process only): a principal
#: confined to GatewayService, the internal contract it calls (whose methods declare the admin
#: role, so that no user token below admin reaches them). Anywhere else, InferenceService
#: included, it is PERMISSION_DENIED: the gateway forwards its callers' calls with their own
#: tokens, and its token can neither deploy, undeploy nor roll back.
GATEWAY_PRINCIPAL = Principal(
    "inference-gateway", auth_pb2.ROLE_ADMIN,
    confined_to=frozenset({gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name}))


@dataclasses.dataclass
class InferenceServer(RunningServer):
    """The running service, and the gateway it started in front of itself (if any)."""

    gateway: GatewaySupervisor | None = None  # set once it started

    @classmethod
    def of(cls, base: RunningServer) -> InferenceServer:
        return cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})

    @property
    def gateway_port(self) -> int | None:
        """The port the gateway listens on (None when gateway is off)."""
        return self.gateway.port if self.gateway is not None else None

    @property
    def gateway_address(self) -> str | None:
        """host:port to reach the gateway from this machine (None when gateway is off)."""
        return self.gateway.address if self.gateway is not None else None


def check_gateway_settings(settings: InferenceSettings) -> None:
    """Refuses to start (before anything is started) when the gateway cannot run."""
    if not settings.resolved_gateway_binary.is_file():
        raise FileNotFoundError(missing_binary_message(settings.resolved_gateway_binary))


async def create_server(settings: InferenceSettings) -> InferenceServer:
    check_gateway_settings(settings)
    repository_root = settings.resolved_model_repository
    supervisor = embedded = None
    if settings.triton_url:
        triton_url, backend_kind = settings.triton_url, "onnxruntime"
    else:
        paths = TritonPaths.from_install(settings.triton_venv.resolve(), repository_root.resolve())
        backend_kind = "python"
        if settings.triton_in_gateway:
            # Triton starts with the gateway, below; the service reaches it through the gateway.
            paths.model_repository.mkdir(parents=True, exist_ok=True)
            embedded = EmbeddedTriton(paths, settings.var_dir / "triton" / "tritonserver.pid")
            triton_url = f"127.0.0.1:{settings.triton_grpc_port or free_port()}"
        else:
            supervisor = TritonSupervisor(
                paths, settings.var_dir / "triton", grpc_port=settings.triton_grpc_port,
                http_port=settings.triton_http_port, metrics_port=settings.triton_metrics_port,
                start_timeout_s=settings.triton_start_timeout_s,
                watch_interval_s=settings.triton_watch_interval_s)
            await supervisor.start()
            triton_url = supervisor.grpc_url

    store = SqlStore(settings.var_dir / "inference.db")
    gateway_token = secrets.token_urlsafe(32)
    backend = TritonBackend(triton_url, load_timeout_s=settings.triton_load_timeout_s,
                            token=gateway_token if embedded is not None else None)
    registry_channel = grpc.aio.insecure_channel(
        settings.registry_address,
        options=[("grpc.max_receive_message_length", settings.max_message_bytes)])
    registry = RegistryClient(registry_channel, settings.registry_timeout_s)
    token = settings.registry_token.get_secret_value() if settings.registry_token else None
    options = Options(default_max_batch_size=settings.default_max_batch_size,
                      intra_op_threads=settings.intra_op_threads,
                      alias_poll_interval_s=settings.alias_poll_interval_s,
                      drift_tick_s=settings.drift_tick_s,
                      service_auth=f"Bearer {token}" if token else None)

    metrics = InferenceMetrics()
    alerts = AlertBook(store, metrics)
    repository = ModelRepository(repository_root, backend_kind)
    manager = DeploymentManager(store, registry, backend, repository, alerts, metrics, options)
    router = Router(manager.deployments, registry)
    authenticator = authenticator_for(settings, extra={gateway_token: GATEWAY_PRINCIPAL})
    data_plane = DataPlane(settings.max_message_bytes)
    services = [
        Service(
            descriptor=inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
            servicer=InferenceServicer(manager, alerts, data_plane),
            add_to_server=inference_service_pb2_grpc.add_InferenceServiceServicer_to_server,
        ),
        Service(
            descriptor=gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"],
            servicer=GatewayServicer(manager, router.resolve, authenticator,
                                     settings.gateway_auth_cache_s),
            add_to_server=gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server,
        ),
    ]
    try:
        base = await create_grpc_server(settings, services, authenticator=authenticator,
                                        loopback=True)
    except BaseException:
        await registry_channel.close()
        await backend.close()
        if supervisor is not None:
            await supervisor.stop()
        raise
    running = InferenceServer.of(base)
    metrics.register_into(running.metrics)

    async def on_restart() -> None:
        await backend.reconnect()
        await manager.reload_all()

    if supervisor is not None:
        supervisor.watch(on_restart, alerts, metrics)

    async def shutdown() -> None:
        await manager.stop()
        await data_plane.close()
        await backend.close()
        await registry_channel.close()
        if supervisor is not None:
            await supervisor.stop()
        store.close()

    running.on_stop.append(shutdown)

    gateway = GatewaySupervisor(
        settings.resolved_gateway_binary, settings.var_dir / "gateway",
        host=settings.gateway_host, port=settings.gateway_port,
        # With TLS the service also listens in plaintext on loopback, for the gateway only.
        service=(f"127.0.0.1:{running.loopback_port}" if running.loopback_port
                 else local_address(settings.host, running.port)),
        triton=triton_url, token=gateway_token, max_message_bytes=settings.max_message_bytes,
        infer_timeout_s=settings.triton_infer_timeout_s,
        drift_samples_per_s=settings.gateway_drift_samples_per_s,
        coalesce_in_flight=settings.coalesce_max_in_flight,
        tls=(GatewayTls(settings.tls_cert_file, settings.tls_key_file,
                        settings.tls_client_ca_file) if settings.tls_cert_file else None),
        embedded=embedded, http_port=settings.gateway_http_port,
        open_metadata=settings.gateway_open_metadata,
        config_checksums=settings.gateway_config_checksums,
        start_timeout_s=max(30.0, settings.triton_start_timeout_s) if embedded else 30.0,
        watch_interval_s=settings.triton_watch_interval_s if embedded else 1.0)
    try:
        await gateway.start()
    except BaseException:
        await running.stop(drain_s=0, grace_s=1)
        raise
    gateway.watch(metrics, alerts, on_restart)
    running.before_stop.append(gateway.stop)  # in-flight gateway calls finish first
    running.gateway = gateway
    data_plane.connect(gateway.plaintext_address)
    # Deployments are restored into Triton once it runs (with an embedded Triton: the gateway).
    try:
        await manager.start()
    except BaseException:
        await running.stop(drain_s=0, grace_s=1)
        raise
    return running


def main(argv: list[str] | None = None) -> None:
    tune_malloc()  # large tensors: reuse heap buffers instead of fresh mmap pages
    run(InferenceSettings.load(sys.argv[1:] if argv is None else argv), create_server)


if __name__ == "__main__":
    main()
