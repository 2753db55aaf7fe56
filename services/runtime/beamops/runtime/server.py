"""The gRPC server every service runs: interceptors, health, reflection, metrics, graceful stop.

A service's ``server.py`` builds its servicers and calls :func:`create_grpc_server`; its ``main``
calls :func:`run`. On SIGTERM or SIGINT, health turns NOT_SERVING at once, new calls are still
accepted for ``drain_s`` (so load balancers notice), then in-flight calls get ``grace_period_s``
to finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from .auth import Authenticator, authenticator_for, policy_for
from .interceptors import AuthInterceptor, ErrorInterceptor, MetricsInterceptor
from .logs import configure_logging
from .settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    """One gRPC service to serve: its descriptor, its servicer, and the generated add function."""

    descriptor: ServiceDescriptor
    servicer: object
    add_to_server: Callable[[object, grpc.aio.Server], None]


@dataclass
class RunningServer:
    """A started server and what belongs to it.

    ``before_stop`` callbacks run once the drain is over, before the server stops (helpers that
    call into it, e.g. a proxy in front of it, stop there); ``on_stop`` ones after it stopped.
    """

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    services: Sequence[Service]
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    loopback_port: int | None = None  # plaintext on 127.0.0.1 beside a TLS port (see create_grpc_server)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    before_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, drain_s: float, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        if drain_s > 0:
            await asyncio.sleep(drain_s)
        for callback in self.before_stop:
            await callback()
        await self.server.stop(grace_s)
        for callback in self.on_stop:
            await callback()


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", min(settings.max_request_bytes, settings.max_message_bytes)),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        # A fixed receive window per stream (no BDP probing, which grows it to megabytes): a call
        # refused before its message is read leaves at most one window of it in the server.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.so_reuseport", 0),
    ]


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS (and mutual TLS with a client CA) when certificate files are configured."""
    if settings.tls_cert_file is None and settings.tls_key_file is None:
        if settings.tls_client_ca_file is not None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca, require_client_auth=client_ca is not None,
    )


async def create_grpc_server(
    settings: ServiceSettings, services: Sequence[Service], *,
    authenticator: Authenticator | None = None, loopback: bool = False,
) -> RunningServer:
    """Build and start a server for ``services``; returns it with the port it listens on.

    ``authenticator`` (default: the one ``settings`` describe, :func:`authenticator_for`) checks
    callers' tokens; pass one built with ``authenticator_for(settings, extra={...})`` to also
    accept tokens valid in this process only, or to share it with a servicer. With ``loopback``
    and TLS configured, the server also listens in plaintext on a free port of 127.0.0.1 only
    (``RunningServer.loopback_port``), for a helper process on this machine (the inference
    gateway, which terminates TLS itself); tokens are checked there as everywhere.
    """
    metrics = CollectorRegistry()
    if authenticator is None:
        authenticator = authenticator_for(settings)
    interceptors = [
        MetricsInterceptor(metrics, settings.service_name),
        ErrorInterceptor(),
        AuthInterceptor(authenticator, policy_for(s.descriptor for s in services)),
    ]
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings),
                             maximum_concurrent_rpcs=settings.max_concurrent_calls)
    for service in services:
        service.add_to_server(service.servicer, server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.descriptor.full_name for s in services]
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    port = (server.add_secure_port(address, credentials) if credentials
            else server.add_insecure_port(address))
    if port == 0:
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    loopback_port = server.add_insecure_port("127.0.0.1:0") if loopback and credentials else None
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer, services, metrics,
                         loopback_port=loopback_port)


def run(
    settings: ServiceSettings,
    create_server: Callable[[ServiceSettings], Awaitable[RunningServer]],
) -> None:
    """Run a service until SIGTERM/SIGINT, then stop gracefully. Used by each service's main()."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    asyncio.run(_serve(settings, create_server))


async def _serve(settings, create_server) -> None:
    # Signals are caught from the start: a SIGTERM that arrives while the service is still
    # starting (its helpers, e.g. Triton, already running) stops it gracefully once started,
    # instead of killing the process and leaving the helpers behind.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await create_server(settings)
    if settings.metrics_port is not None:
        httpd, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=running.metrics)
        running.on_stop.append(_async(httpd.shutdown))
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, httpd.server_port)
    log.info("%s serving on %s:%d", settings.service_name, settings.host, running.port,
             extra={"port": running.port})
    await stop.wait()
    log.info("stopping: health NOT_SERVING, draining for %.1fs, grace %.1fs",
             settings.drain_s, settings.grace_period_s)
    await running.stop(settings.drain_s, settings.grace_period_s)
    log.info("%s stopped", settings.service_name)


def _async(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        await asyncio.to_thread(fn)

    return call
