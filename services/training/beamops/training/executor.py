"""Where jobs run: a local subprocess per job, or a task on a Dask cluster.

Both take the same payload (the job id, the validated spec, the data service address), run
:mod:`beamops.training.worker`, pass its events to ``on_event`` as they come, and return a
:class:`WorkOutcome`. ``cancel`` really stops the work: the local process gets SIGTERM, then
SIGKILL after a grace period; the Dask future is cancelled and a flag the task checks between
iterations is set. No user string ever reaches a shell: the local worker is started with an
argument list whose only variable part is the path of a job file the service wrote.

Credentials: the local worker gets the caller's token on stdin (``forwards_caller_token``). A Dask
task never does: task arguments are stored on the scheduler and copied to whichever worker runs
them, so the task gets only the payload (job id, validated spec, data address) and reads with the
workers' own reader credential (``worker.WORKER_TOKEN_ENV``); the job manager checks the
submitter's own rights with their token when the job starts.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Protocol

import numpy as np

from beamops.runtime.processes import command_line

from .failures import dask_failure_message
from .limits import JobLimits, cpu_seconds, dask_memory_request, exit_message, format_bytes

log = logging.getLogger(__name__)

OnEvent = Callable[[dict], Awaitable[None]]


@dataclass
class WorkOutcome:
    status: str  # "succeeded", "failed" or "cancelled"
    message: str = ""
    result: dict | None = None
    onnx: bytes | None = None
    predictions: np.ndarray | None = None


class Executor(Protocol):
    name: str
    forwards_caller_token: bool  # False: the worker reads with its own credential, not the caller's

    async def run(self, job_id: str, payload: dict, token: str | None, on_event: OnEvent) -> WorkOutcome: ...

    async def cancel(self, job_id: str) -> None: ...

    async def capacity(self) -> int:
        """How many jobs (search trials) it runs at once."""
        ...

    async def close(self) -> None: ...


class LocalExecutor:
    """One subprocess per job: ``[sys.executable, "-m", "beamops.training.worker", <job file>]``.

    ``limits`` (memory, CPU time) travel in the job file; the worker sets them on itself before
    any job code runs (:mod:`beamops.training.limits`)."""

    name = "local"
    forwards_caller_token = True  # on the worker's stdin, never on disk

    def __init__(self, jobs_dir: Path, poll_interval_s: float = 0.2, cancel_grace_s: float = 5.0,
                 max_workers: int = 2, limits: JobLimits | None = None) -> None:
        self.jobs_dir = jobs_dir
        self.limits = limits or JobLimits()
        self.max_workers = max_workers
        self.poll_interval_s = poll_interval_s
        self.cancel_grace_s = cancel_grace_s
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._cancelled: set[str] = set()

    async def run(self, job_id: str, payload: dict, token: str | None, on_event: OnEvent) -> WorkOutcome:
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        for name in ("outcome.json", "result.json", "model.onnx", "predictions.npy"):
            (job_dir / name).unlink(missing_ok=True)
        events_path = job_dir / "events.jsonl"
        events_path.write_text("")
        job_file = job_dir / "job.json"
        job_file.write_text(json.dumps({**payload, "events_path": str(events_path),
                                        "output_dir": str(job_dir), "limits": self.limits.to_dict()}))
        with open(job_dir / "worker.log", "ab") as worker_log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "beamops.training.worker", str(job_file),
                stdin=asyncio.subprocess.PIPE, stdout=worker_log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs[job_id] = proc
        try:
            proc.stdin.write(((token or "") + "\n").encode())
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        await on_event({"type": "worker_started", "worker": {"kind": "local", "pid": proc.pid}})
        tail = _Tail(events_path)
        cpu_used: float | None = None  # last seen: tells the CPU limit's SIGKILL from another one
        try:
            while proc.returncode is None:
                for event in tail.read():
                    await on_event(event)
                if self.limits.cpu_s:
                    cpu_used = cpu_seconds(proc.pid) or cpu_used  # None once the process is gone
                try:
                    await asyncio.wait_for(proc.wait(), self.poll_interval_s)
                except asyncio.TimeoutError:
                    pass
            for event in tail.read():
                await on_event(event)
        finally:
            self._procs.pop(job_id, None)
        if job_id in self._cancelled:
            self._cancelled.discard(job_id)
            return WorkOutcome("cancelled", "the job was cancelled")
        outcome_file = job_dir / "outcome.json"
        if not outcome_file.exists():
            return WorkOutcome("failed", exit_message(proc.returncode, self.limits, cpu_used))
        status = json.loads(outcome_file.read_text())
        if status["status"] != "succeeded":
            return WorkOutcome(status["status"], status.get("message", ""))
        return WorkOutcome(
            "succeeded", "",
            result=json.loads((job_dir / "result.json").read_text()),
            onnx=(job_dir / "model.onnx").read_bytes(),
            predictions=np.load(job_dir / "predictions.npy"),
        )

    async def cancel(self, job_id: str) -> None:
        proc = self._procs.get(job_id)
        if proc is None or proc.returncode is not None:
            return
        self._cancelled.add(job_id)
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.cancel_grace_s)
        except asyncio.TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)

    async def capacity(self) -> int:
        """Search trials run at most this many worker subprocesses at once (a setting)."""
        return self.max_workers

    async def close(self) -> None:
        for job_id in list(self._procs):
            proc = self._procs.get(job_id)
            if proc is not None and proc.returncode is None:
                _signal_group(proc.pid, signal.SIGKILL)

    @staticmethod
    def stop_stale(worker: dict, job_id: str) -> bool:
        """Kill the worker(s) an earlier run of the service left (``pid``, or ``pids`` for the
        trials of a search); True when one was running."""
        if worker.get("kind") != "local":
            return False
        killed = False
        for pid in [worker.get("pid"), *worker.get("pids", ())]:
            if not isinstance(pid, int):
                continue
            cmdline = command_line(pid)
            if cmdline is None:
                continue
            if b"beamops.training.worker" not in cmdline or not any(job_id.encode() in a for a in cmdline):
                continue
            _signal_group(pid, signal.SIGKILL)
            killed = True
        return killed


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the worker leads its own session: its children go too
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class _Tail:
    """Reads complete JSON lines appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        events = []
        for line in lines:
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("skipping a malformed worker event line")
        return events


class DaskExecutor:
    """Each job is one task on a Dask cluster (a ``distributed`` scheduler address, with the
    cluster's TLS credentials as a ``distributed.Security`` for a tls:// one)."""

    name = "dask"
    forwards_caller_token = False  # the task runs with the workers' own data credential

    def __init__(self, scheduler_address: str, poll_interval_s: float = 0.2, security=None,
                 memory_bytes: int = 0) -> None:
        self.scheduler_address = scheduler_address
        self.memory_bytes = memory_bytes  # requested as the MEMORY resource if the workers declare it
        self.security = security
        self.poll_interval_s = poll_interval_s
        self._client = None
        self._client_lock = asyncio.Lock()
        self._futures: dict[str, object] = {}
        self._cancelled: set[str] = set()

    async def client(self):
        from distributed import Client

        async with self._client_lock:
            if self._client is None:
                try:
                    self._client = await Client(self.scheduler_address, asynchronous=True, timeout=10,
                                                **({"security": self.security} if self.security else {}))
                except (OSError, asyncio.TimeoutError) as exc:
                    raise ConnectionError("the Dask scheduler cannot be reached") from exc
            return self._client

    async def run(self, job_id: str, payload: dict, token: str | None, on_event: OnEvent) -> WorkOutcome:
        """``token`` (the caller's) stays in this process: it is never a task argument."""
        from distributed import Queue, Variable

        from .worker import cancel_variable_name, events_queue_name, run_on_dask

        try:
            client = await self.client()
        except ConnectionError as exc:
            return WorkOutcome("failed", f"{exc}; the job did not start")
        resources, problem = await self._resources(client)
        if problem:
            return WorkOutcome("failed", problem)
        queue = await Queue(events_queue_name(job_id), client=client)  # created on the scheduler
        flag = Variable(cancel_variable_name(job_id), client=client)
        await flag.set(False)
        future = client.submit(run_on_dask, payload, key=f"beamops-training-{job_id}", pure=False,
                               **({"resources": resources} if resources else {}))
        self._futures[job_id] = future
        await on_event({"type": "worker_started", "worker": {"kind": "dask", "key": future.key}})
        if self.memory_bytes:
            memory = (f"{format_bytes(self.memory_bytes)} of the Dask workers' MEMORY resource requested "
                      "(job_memory_limit_bytes)" if resources else
                      "bounded by the Dask workers' own memory limit (they declare no MEMORY resource)")
            await on_event({"type": "log", "level": "INFO",
                            "text": f"limits on Dask: memory {memory}; CPU time not limited; wall-clock "
                                    "time limited by the training service"})

        async def drain() -> None:
            for event in await queue.get(batch=True):
                await on_event(event)

        try:
            while not future.done():
                # batch=True returns at once with what is waiting: a blocking get with a timeout
                # would make the scheduler log a TimeoutError traceback at every empty poll.
                events = await queue.get(batch=True)
                for event in events:
                    await on_event(event)
                if not events:
                    await asyncio.sleep(self.poll_interval_s)
            await drain()
            if job_id in self._cancelled or future.cancelled():
                return WorkOutcome("cancelled", "the job was cancelled")
            try:
                out = await future
            except Exception as exc:  # noqa: BLE001 - the task died (worker lost, ...)
                return WorkOutcome("failed", dask_failure_message(exc))
        finally:
            self._futures.pop(job_id, None)
            cancelled = job_id in self._cancelled or future.cancelled()
            self._cancelled.discard(job_id)
            # A cancelled task's thread runs on until it reads the flag (Dask cannot kill a
            # thread): the flag must stay set for it, so it is only deleted after a normal end.
            if not cancelled:
                try:
                    await flag.delete()
                except Exception:  # noqa: BLE001 - best effort
                    pass
        if out["status"] != "succeeded":
            return WorkOutcome(out["status"], out.get("message", ""))
        return WorkOutcome("succeeded", "", result=out["result"], onnx=out["onnx"],
                           predictions=np.load(io.BytesIO(out["predictions"])))

    async def _resources(self, client) -> tuple[dict | None, str]:
        """The task's ``resources=`` (the memory limit, when the workers declare MEMORY)."""
        if not self.memory_bytes:
            return None, ""
        try:
            identity = await client.scheduler.identity()
        except OSError:
            return None, ""
        return dask_memory_request(identity.get("workers", {}), self.memory_bytes)

    async def cancel(self, job_id: str) -> None:
        from distributed import Variable

        from .worker import cancel_variable_name

        future = self._futures.get(job_id)
        if future is None:
            return
        self._cancelled.add(job_id)
        client = await self.client()
        await Variable(cancel_variable_name(job_id), client=client).set(True)
        await client.cancel([future], force=True)

    async def capacity(self) -> int:
        """Threads of the cluster's workers now (a search runs one task per trial)."""
        try:
            client = await self.client()
            identity = await client.scheduler.identity()
        except (ConnectionError, OSError):
            return 1
        return max(1, sum(int(w.get("nthreads", 1)) for w in identity.get("workers", {}).values()))

    async def close(self) -> None:
        if self._client is not None:
            for job_id in list(self._futures):
                await self.cancel(job_id)
            await self._client.close()
            self._client = None
