"""Runs beamops-gateway (the compiled data plane) for the service: start, watch, stop.

The gateway serves Predict and PredictStream itself and forwards every other call to this
service, from which it also gets its routes and its callers' identities (GatewayService), with
the token handed to it on its standard input (:func:`spawn`): made at start, valid in this process
only, never written to disk, and in no environment: the gateway's environment, which the processes
its Triton starts (Python-backend stubs running model code) inherit, holds no token and no beamops
setting (:func:`environment`). That token is a principal confined to GatewayService
(``server.GATEWAY_PRINCIPAL``): it cannot deploy, undeploy or read anything else.
It is ready when a ``grpc.health.v1`` check through its port answers SERVING (it forwards the
check here, so that proves both directions). It is restarted, on the same port, when it exits;
on shutdown it gets SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``
(``EMBEDDED_STOP_TIMEOUT_S`` with Triton inside).
Its output goes to ``<run_dir>/gateway.log``, its pid to ``<run_dir>/gateway.pid``.

With :class:`EmbeddedTriton`, the gateway also runs the bundled Triton inside its own process
(Triton's in-process library, with the bundled backends and the service's model repository): a
Predict then reaches the model without a second gRPC hop. The gateway serves the part of
Triton's gRPC API that the service calls on a loopback port (``triton``). When that gateway
exits, Triton has exited with it: the restart also ends the stubs and shared memory it left
behind, counts a Triton restart and calls ``on_restart`` (which loads the deployments again),
with a BACKEND_UNAVAILABLE alert firing meanwhile, as for a tritonserver process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..alerts import AlertBook
from ..metrics import InferenceMetrics
from ..triton.bundled import TritonPaths, end_stubs, new_shm_prefix
from ..triton.bundled import environment as triton_environment
from ..triton.leftovers import stop_leftover
from ..triton.supervisor import free_port, triton_back, triton_down

log = logging.getLogger(__name__)

TOKEN_ENV = "BEAMOPS_GATEWAY_TOKEN"  # the gateway also reads its token there (the service passes stdin)
STOP_TIMEOUT_S = 5.0
#: With Triton inside: the gateway's graceful stop, then Triton's (calls in flight, unloading the
#: models and ending their stubs: the gateway's --triton-exit-timeout, 10 s).
EMBEDDED_STOP_TIMEOUT_S = STOP_TIMEOUT_S + 10.0
#: Attempts at starting on a port picked here (another process may take it meanwhile).
FREE_PORT_ATTEMPTS = 3
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


class GatewayStartError(RuntimeError):
    """beamops-gateway is missing, exited, or did not become ready while starting."""


def missing_binary_message(binary: Path) -> str:
    return (f"gateway is on but the beamops-gateway binary is missing ({binary}): build it with "
            "`make gateway`, or set gateway_binary (BEAMOPS_INFERENCE_GATEWAY_BINARY)")


def local_address(host: str, port: int) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    if host in _WILDCARDS:
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass(frozen=True)
class GatewayTls:
    """The service's TLS files, which the gateway serves its callers with."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class EmbeddedTriton:
    """The bundled Triton, run inside the gateway's process."""

    paths: TritonPaths
    pid_file: Path  # where the pid of the process running Triton goes, for operators
    shm_prefix: str = dataclasses.field(default_factory=new_shm_prefix)

    def __post_init__(self) -> None:
        if self.paths.library is None:
            raise FileNotFoundError(
                f"no libtritonserver*.so in {self.paths.library_path[-1]}: run "
                "services/inference/triton/install.sh")

    def args(self) -> list[str]:
        return ["--triton-library", str(self.paths.library),
                "--triton-repository", str(self.paths.model_repository),
                "--triton-backends", str(self.paths.backend_dir),
                "--triton-backend-config", f"python,shm-region-prefix-name={self.shm_prefix}"]


def command(binary: Path, *, listen: str, service: str, triton: str, max_message_bytes: int,
            infer_timeout_s: float, drift_samples_per_s: int, coalesce_in_flight: int,
            tls: GatewayTls | None = None, embedded: EmbeddedTriton | None = None,
            http_listen: str = "", open_metadata: bool = False, config_checksums: bool = False,
            loopback_listen: str = "") -> list[str]:
    """The gateway's command line (see the gateway's design notes)."""
    args = [str(binary), "--listen", listen, "--service", service, "--triton", triton,
            "--max-message-bytes", str(max_message_bytes),
            "--infer-timeout", f"{infer_timeout_s:g}",
            "--drift-samples-per-s", str(drift_samples_per_s),
            "--coalesce-in-flight", str(coalesce_in_flight)]
    if tls is not None:
        args += ["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)]
        if tls.client_ca_file is not None:
            args += ["--tls-client-ca", str(tls.client_ca_file)]
        if loopback_listen:
            args += ["--loopback-listen", loopback_listen]
    if http_listen:
        args += ["--http-listen", http_listen]
    if open_metadata:
        args.append("--open-metadata")
    if config_checksums:
        args.append("--config-checksums")
    if embedded is not None:
        args += embedded.args()
    return args + ["--exit-with-parent"]  # a gateway whose service was killed stops too


def environment(base: Mapping[str, str] | None = None,
                embedded: EmbeddedTriton | None = None) -> dict[str, str]:
    """The caller's environment without its beamops settings and secrets (the token among them:
    it goes on stdin, :func:`spawn`), plus, for an embedded Triton, what its Python-backend stubs
    need."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("BEAMOPS_")}
    return triton_environment(embedded.paths, env) if embedded is not None else env


def spawn(args: list[str], token: str, out, embedded: EmbeddedTriton | None = None) -> subprocess.Popen[bytes]:
    """Starts the gateway (``args``: :func:`command`), handing it ``token`` on its standard input
    (its first line; then closed), with output to ``out``."""
    process = subprocess.Popen(
        args, env=environment(embedded=embedded), stdin=subprocess.PIPE, stdout=out,
        stderr=subprocess.STDOUT, start_new_session=True)  # a Ctrl-C reaches the service only
    try:
        process.stdin.write(token.encode() + b"\n")
        process.stdin.close()
    except OSError:  # it exited at once: its exit code and log say why
        pass
    return process


class GatewaySupervisor:
    def __init__(self, binary: Path, run_dir: Path, *, host: str, port: int, service: str,
                 triton: str, token: str, max_message_bytes: int, infer_timeout_s: float,
                 drift_samples_per_s: int, coalesce_in_flight: int,
                 tls: GatewayTls | None = None, embedded: EmbeddedTriton | None = None,
                 http_port: int = 0, open_metadata: bool = False, config_checksums: bool = False,
                 start_timeout_s: float = 30.0, watch_interval_s: float = 1.0) -> None:
        self.binary, self.run_dir = binary, run_dir
        self.host, self.port, self.http_port = host, port, http_port
        self._auto_port = port == 0
        self._auto_http_port = http_port == 0
        self.loopback_port = 0  # with TLS: where this service reaches the fronts in plaintext
        self._open_metadata = open_metadata
        self._token = token
        self._flags = dict(service=service, triton=triton, max_message_bytes=max_message_bytes,
                           infer_timeout_s=infer_timeout_s, drift_samples_per_s=drift_samples_per_s,
                           coalesce_in_flight=coalesce_in_flight, tls=tls, embedded=embedded,
                           config_checksums=config_checksums)
        self.tls, self.embedded = tls, embedded
        self.start_timeout_s, self.watch_interval_s = start_timeout_s, watch_interval_s
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task | None = None

    @property
    def address(self) -> str:
        """Where clients reach the gateway from this machine (host:port)."""
        return local_address(self.host, self.port)

    @property
    def plaintext_address(self) -> str:
        """Where this service reaches the gateway's gRPC fronts without TLS: its port, or with
        TLS a loopback port of its own."""
        return f"127.0.0.1:{self.loopback_port}" if self.tls is not None else self.address

    @property
    def http_address(self) -> str:
        """Where clients reach the gateway's REST front from this machine (host:port)."""
        return local_address(self.host, self.http_port)

    @property
    def log_path(self) -> Path:
        return self.run_dir / "gateway.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "gateway.pid"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Starts the gateway and returns once it answers SERVING through its port."""
        if not self.binary.is_file():
            raise GatewayStartError(missing_binary_message(self.binary))
        await asyncio.to_thread(self.stop_leftover)
        attempts = (FREE_PORT_ATTEMPTS if self._auto_port or self._auto_http_port or self.tls
                    else 1)
        for attempt in range(attempts):
            if self._auto_port and (attempt > 0 or self.port == 0):
                self.port = free_port()
            if self._auto_http_port and (attempt > 0 or self.http_port == 0):
                self.http_port = free_port()
            if self.tls is not None and (attempt > 0 or self.loopback_port == 0):
                self.loopback_port = free_port()
            try:
                await self._start_once()
                return
            except GatewayStartError as exc:
                if attempt + 1 == attempts:
                    raise
                log.warning("beamops-gateway did not start on port %d (%s); trying another port",
                            self.port, exc)

    async def _start_once(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        listen = f"{self.host or '0.0.0.0'}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            listen = f"[{self.host}]:{self.port}"
        http_listen = f"{self.host or '0.0.0.0'}:{self.http_port}"
        if ":" in self.host and not self.host.startswith("["):
            http_listen = f"[{self.host}]:{self.http_port}"
        args = command(self.binary, listen=listen, http_listen=http_listen,
                       open_metadata=self._open_metadata,
                       loopback_listen=f"127.0.0.1:{self.loopback_port}" if self.tls else "",
                       **self._flags)
        self._end_stubs()  # of an embedded Triton that exited with its gateway
        with open(self.log_path, "ab") as out:
            self._process = spawn(args, self._token, out, self.embedded)
        self.pid_file.write_text(str(self._process.pid))  # at once: operators can find it
        if self.embedded is not None:
            self.embedded.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.embedded.pid_file.write_text(str(self._process.pid))
        try:
            await self._wait_ready()
        except BaseException:
            await self._terminate()
            self.pid_file.unlink(missing_ok=True)
            raise
        log.info("beamops-gateway serving on %s (pid %d)", listen, self._process.pid)

    async def _wait_ready(self) -> None:
        """Until the gateway is ready: a health check through it answers SERVING (it forwards
        to the service), asked where this service reaches it in plaintext."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        async with grpc.aio.insecure_channel(self.plaintext_address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not await self._serving(health):
                if not self.is_running():
                    raise GatewayStartError(f"beamops-gateway exited with code "
                                            f"{self._process.returncode}{self._log_tail()}")
                if loop.time() > deadline:
                    raise GatewayStartError(f"beamops-gateway not ready on {self.address} after "
                                            f"{self.start_timeout_s:g} s{self._log_tail()}")
                await asyncio.sleep(0.05)

    @staticmethod
    async def _serving(health: health_pb2_grpc.HealthStub) -> bool:
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def watch(self, metrics: InferenceMetrics, alerts: AlertBook,
              on_restart: Callable[[], Awaitable[None]]) -> None:
        """Restarts the gateway (same port, same token) whenever it exits. With an embedded
        Triton, ``alerts`` gets BACKEND_UNAVAILABLE until the restart, after which
        ``on_restart`` (loading the deployments again) runs."""
        self._task = asyncio.create_task(self._watch(metrics, alerts, on_restart),
                                         name="gateway-watch")

    async def _watch(self, metrics: InferenceMetrics, alerts: AlertBook,
                     on_restart: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.watch_interval_s)
            if self.is_running():
                continue
            code = self._process.returncode if self._process else None
            log.error("beamops-gateway exited (code %s); restarting it on port %d", code, self.port)
            if self.embedded is not None:
                triton_down(alerts, f"Triton exited with its gateway (code {code}); restarting it")
            try:
                await self._start_once()
            except Exception as exc:  # noqa: BLE001 - keep watching, try again next tick
                log.error("restarting beamops-gateway failed: %s", exc)
                continue
            self.restarts += 1
            metrics.gateway_restarts.inc()
            if self.embedded is not None:
                await triton_back(metrics, alerts, on_restart)
                log.info("Triton restarted with its gateway, deployments reloaded")

    async def stop(self) -> None:
        """Stops watching, then SIGTERM (the gateway finishes its calls), SIGKILL after
        ``STOP_TIMEOUT_S``. Safe to call more than once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._terminate()
        await asyncio.to_thread(self._end_stubs)
        self.pid_file.unlink(missing_ok=True)
        if self.embedded is not None:
            self.embedded.pid_file.unlink(missing_ok=True)

    def _end_stubs(self) -> None:
        if self.embedded is not None and self._process is not None:
            end_stubs(self._process.pid, self.embedded.shm_prefix)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        timeout = EMBEDDED_STOP_TIMEOUT_S if self.embedded is not None else STOP_TIMEOUT_S
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            log.warning("beamops-gateway still running %g s after SIGTERM; killing it", timeout)
            process.kill()
            await asyncio.to_thread(process.wait)

    def stop_leftover(self) -> bool:
        """Stops a gateway that an earlier run of the service left behind (the service was
        killed): the pid file names a live process running this binary. True if there was one.
        With Triton inside, also a tritonserver process left by a run without it."""
        if self.embedded is not None:
            stop_leftover(self.embedded.pid_file, self.embedded.paths.tritonserver,
                          what="bundled Triton", group=True)
        return stop_leftover(self.pid_file, self.binary, what="beamops-gateway",
                             term_timeout_s=STOP_TIMEOUT_S, group=self.embedded is not None)

    def _log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "; log tail:\n" + "\n".join(tail) if tail else ""
