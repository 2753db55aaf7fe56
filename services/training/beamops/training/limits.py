"""Limits on the work users submit: memory, CPU time and wall-clock time of a job, with messages
that name the limit that ended it.

Where each is enforced:

* Local executor: the worker subprocess sets its own ``RLIMIT_DATA`` (memory) and
  ``RLIMIT_CPU`` (CPU time), soft and hard, before any job code runs (:func:`apply_in_worker`;
  the job file carries the values), and ``RLIMIT_CORE`` 0 (no core dump of a large worker).
  ``RLIMIT_DATA`` rather than ``RLIMIT_AS``: the address space of a numpy/scikit-learn/onnxruntime
  worker is several times its real use (each thread reserves stack and a malloc arena that stay
  mostly untouched; measured: 1.0 GiB of address space for 0.24 GiB resident, 0.37 GiB of data),
  and grows with the machine's core count, so an address-space limit would fail honest jobs on
  big machines. ``RLIMIT_DATA`` counts private writable memory only, which is what the job can
  fill (thread stacks are in it, 8 MiB each: measured, 50 idle threads add 0.4 GiB of data and
  1.4 GiB of address space). Over it an allocation fails (numpy raises ``MemoryError``, which the worker reports);
  over the soft CPU limit the kernel sends SIGXCPU, over the hard one (a few seconds later)
  SIGKILL. The service reads the exit and says which limit ended the job (:func:`exit_message`).
* Dask executor: the memory limit is requested as the ``MEMORY`` resource when the workers
  declare one (``dask worker --resources MEMORY=...``); otherwise the Dask workers' own memory
  limit (their nanny) applies. The CPU-time limit is not enforced on Dask: tasks share the
  workers' threads and a thread cannot be limited on its own.
* Wall-clock time, both executors: the job manager stops the work after the job's timeout
  (the spec's, else ``job_timeout_s``) and marks the job FAILED.
"""

from __future__ import annotations

import math
import os
import signal
from dataclasses import asdict, dataclass
from typing import Mapping

# After the soft CPU limit (SIGXCPU) the kernel kills at the hard one, this much later.
CPU_KILL_GRACE_S = 5
MEMORY_RESOURCE = "MEMORY"  # the Dask worker resource the memory limit is requested as


@dataclass(frozen=True)
class JobLimits:
    """What one worker process may use; 0: no limit."""

    memory_bytes: int = 0
    cpu_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "JobLimits":
        data = data or {}
        return cls(int(data.get("memory_bytes", 0) or 0), float(data.get("cpu_s", 0.0) or 0.0))


def format_bytes(n: int) -> str:
    """1073741824 -> "1 GiB", 1610612736 -> "1.5 GiB", 500000 -> "488 KiB"."""
    value, unit = float(n), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.3g} {unit}"


def format_seconds(s: float) -> str:
    """3600 -> "3600 s (1 h)", 90 -> "90 s", 5400 -> "5400 s (1.5 h)"."""
    text = f"{s:g} s"
    if s >= 3600:
        text += f" ({s / 3600:.3g} h)"
    elif s >= 120:
        text += f" ({s / 60:.3g} min)"
    return text


def memory_message(memory_bytes: int) -> str:
    return (f"the job used more than {format_bytes(memory_bytes)} of memory, the limit of one training "
            "worker on this service (job_memory_limit_bytes); use fewer events or features, a smaller "
            "model or batch, or ask the administrator for a higher limit")


def cpu_message(cpu_s: float) -> str:
    return (f"the job used more than {format_seconds(cpu_s)} of CPU time (all its threads together), the "
            "limit of one training worker on this service (job_cpu_limit_s); use fewer iterations or "
            "events, or ask the administrator for a higher limit")


def timeout_message(timeout_s: float, from_spec: bool, max_timeout_s: float) -> str:
    text = f"the job ran longer than its time limit of {format_seconds(timeout_s)} and was stopped"
    if from_spec:
        return text + " (the limit is the timeout its spec asked for)"
    return (text + " (the limit is job_timeout_s, this service's default; a job spec may ask for up to "
            f"{format_seconds(max_timeout_s)} with its timeout)")


def exit_message(returncode: int, limits: JobLimits, cpu_used_s: float | None = None) -> str:
    """Why a local worker that wrote no outcome stopped, for the physicist.

    ``cpu_used_s`` is the worker's CPU time last seen while it ran (None: unknown). SIGXCPU is the
    CPU limit; a SIGKILL after the worker had used its CPU time is the CPU limit's hard end; a
    crash (SIGABRT, SIGSEGV, SIGBUS) under a memory limit is most often a library that could not
    get memory; any other SIGKILL came from outside (the machine out of memory, an operator).
    """
    if returncode >= 0:
        return (f"the training worker stopped unexpectedly (it exited with code {returncode}); "
                "see the job's log lines")
    sig = -returncode
    name = _signal_name(sig)
    if limits.cpu_s and (sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_used_s is not None and cpu_used_s >= limits.cpu_s)):
        return cpu_message(limits.cpu_s)
    if sig == signal.SIGKILL:
        return (f"the training worker was killed ({name}) from outside the training service, most often "
                "because the machine ran out of memory; see the job's log lines")
    if limits.memory_bytes and sig in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
        return (f"the training worker crashed ({name}); under the memory limit of "
                f"{format_bytes(limits.memory_bytes)} (job_memory_limit_bytes) this is most often a "
                "library that could not get more memory: use fewer events or a smaller model; see the "
                "job's log lines")
    return f"the training worker stopped unexpectedly (it was killed by {name}); see the job's log lines"


def _signal_name(sig: int) -> str:
    try:
        return f"signal {signal.Signals(sig).name}"
    except ValueError:
        return f"signal {sig}"


def resolve_timeout(spec_timeout_s: float, default_s: float) -> tuple[float, bool]:
    """The job's wall-clock limit and whether its spec set it."""
    return (spec_timeout_s, True) if spec_timeout_s > 0 else (default_s, False)


# --------------------------------------------------------------------------- in the worker


def _capped(value: int, hard: int) -> int:
    import resource

    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def apply_in_worker(limits: JobLimits) -> None:
    """Set this process's limits, soft and hard (job code cannot raise them again)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.memory_bytes:
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        value = _capped(limits.memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (value, value))
    if limits.cpu_s:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        soft = _capped(max(1, math.ceil(limits.cpu_s)), hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, _capped(soft + CPU_KILL_GRACE_S, hard)))


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a running process has used, from /proc (None: not readable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return parse_cpu_seconds(text, os.sysconf("SC_CLK_TCK"))


def parse_cpu_seconds(stat: str, ticks_per_s: int) -> float | None:
    """utime + stime of a /proc/<pid>/stat line (the command name may hold spaces and ')')."""
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return (int(fields[11]) + int(fields[12])) / ticks_per_s
    except (IndexError, ValueError):
        return None


# --------------------------------------------------------------------------- on Dask


def dask_memory_request(workers: Mapping[str, Mapping], memory_bytes: int) -> tuple[dict | None, str]:
    """The ``resources=`` of a job's Dask task, and a reason it cannot run ("" when it can).

    ``workers`` is the scheduler identity's ``workers``. Only when some worker declares the
    ``MEMORY`` resource is it requested (a resource no worker declares would leave the task
    waiting forever).
    """
    if not memory_bytes:
        return None, ""
    offered = [float((w.get("resources") or {}).get(MEMORY_RESOURCE, 0)) for w in workers.values()
               if MEMORY_RESOURCE in (w.get("resources") or {})]
    if not offered:
        return None, ""
    if max(offered) < memory_bytes:
        return None, (f"no Dask worker offers the {format_bytes(memory_bytes)} of memory a job is given "
                      f"(job_memory_limit_bytes): the largest {MEMORY_RESOURCE} resource of a worker is "
                      f"{format_bytes(int(max(offered)))}; the job did not start")
    return {MEMORY_RESOURCE: memory_bytes}, ""
