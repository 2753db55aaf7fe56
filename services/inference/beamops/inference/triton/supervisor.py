"""Runs the bundled Triton for the service: start, watch (restart when it dies), stop.

After a restart Triton has forgotten every model; ``on_restart`` (the deployment manager's
``reload_all``) loads them again. While Triton is down, Predict answers UNAVAILABLE and a
BACKEND_UNAVAILABLE alert is firing. The server's pid is written to ``<run_dir>/tritonserver.pid``
for operators.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..alerts import AlertBook
from ..domain import AlertKind, Severity
from ..metrics import InferenceMetrics
from .bundled import BundledTriton, TritonPaths, TritonStartError
from .leftovers import stop_leftover

log = logging.getLogger(__name__)
BACKEND_ALERT = "backend/unavailable"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def triton_down(alerts: AlertBook, summary: str) -> None:
    """The process running Triton exited: BACKEND_UNAVAILABLE fires until triton_back."""
    alerts.fire(BACKEND_ALERT, AlertKind.BACKEND_UNAVAILABLE, Severity.CRITICAL, summary)


async def triton_back(metrics: InferenceMetrics, alerts: AlertBook,
                      on_restart: Callable[[], Awaitable[None]]) -> None:
    """Triton runs again after a restart (it forgot every model): counted, ``on_restart``
    (loading the deployments again), the alert resolved."""
    metrics.triton_restarts.inc()
    try:
        await on_restart()
    except Exception:  # noqa: BLE001 - the caller keeps watching
        log.exception("reloading deployments after the Triton restart failed")
    alerts.resolve(BACKEND_ALERT)


class TritonSupervisor:
    def __init__(self, paths: TritonPaths, run_dir: Path, *, grpc_port: int = 0, http_port: int = 0,
                 metrics_port: int = 0, start_timeout_s: float = 120.0,
                 watch_interval_s: float = 1.0) -> None:
        self.run_dir = run_dir
        self.triton = BundledTriton(
            paths, grpc_port or free_port(), http_port or free_port(), metrics_port or free_port(),
            log_path=run_dir / "tritonserver.log")
        self.start_timeout_s = start_timeout_s
        self.watch_interval_s = watch_interval_s
        self.restarts = 0
        self._task: asyncio.Task | None = None

    @property
    def grpc_url(self) -> str:
        return self.triton.grpc_url

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "tritonserver.pid"

    async def start(self) -> None:
        await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A Triton left by a killed run of the service (its own process group outlives it).
        stop_leftover(self.pid_file, self.triton.paths.tritonserver, what="bundled Triton",
                      group=True)
        self.triton.start()
        try:
            self.triton.wait_ready(self.start_timeout_s)
        except TritonStartError:
            self.triton.stop()
            raise
        self.pid_file.write_text(str(self.triton.pid))

    def watch(self, on_restart: Callable[[], Awaitable[None]], alerts: AlertBook,
              metrics: InferenceMetrics) -> None:
        self._task = asyncio.create_task(self._watch(on_restart, alerts, metrics), name="triton-watch")

    async def _watch(self, on_restart, alerts: AlertBook, metrics: InferenceMetrics) -> None:
        while True:
            await asyncio.sleep(self.watch_interval_s)
            if self.triton.is_running():
                continue
            code = self.triton.returncode
            log.error("bundled Triton exited (code %s); restarting", code)
            triton_down(alerts, f"Triton exited (code {code}); restarting it")
            try:
                await self.start()
            except (TritonStartError, OSError) as exc:
                log.error("restarting Triton failed: %s", exc)
                continue
            self.restarts += 1
            await triton_back(metrics, alerts, on_restart)
            log.info("bundled Triton restarted, deployments reloaded")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.triton.stop)
        self.pid_file.unlink(missing_ok=True)
