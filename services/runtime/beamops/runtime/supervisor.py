"""When ``beamops-stack``'s supervisor restarts a service that exited, and when it gives up.

Pure logic, no processes: the supervisor loop (``stack.Stack.supervise``) tells a ``Supervision``
what happened (``started``, ``exited``) with the time, asks it what is ``due``, and writes its
``snapshot`` to the state file that ``beamops-stack status`` reads.

The policy: a service that exits unexpectedly (any exit the supervisor did not ask for, SIGKILL
included) is started again after a delay that doubles with every quick exit in a row (1 s, 2 s,
4 s, ... capped at 30 s). A run that lasted ``stable_s`` (60 s) was not part of a crash loop: the
next exit starts from the first delay again. After ``give_up_after`` (10) quick exits in a row the
supervisor gives up on that service, says so in its log and in ``status``, until the next
``beamops-stack up``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

RUNNING = "running"
RESTARTING = "restarting"  # exited, waiting for its backoff delay
GAVE_UP = "gave up"


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    stable_s: float = 60.0  # a run at least this long ends a crash loop
    give_up_after: int = 10  # quick exits in a row

    def delay(self, quick_exits: int) -> float:
        """The wait before the next start, after ``quick_exits`` (>= 1) quick exits in a row."""
        return min(self.first_delay_s * self.factor ** (max(quick_exits, 1) - 1), self.max_delay_s)

    def describe(self) -> str:
        return (f"restarts with backoff {self.first_delay_s:g} s doubling to {self.max_delay_s:g} s; "
                f"gives up after {self.give_up_after} exits in a row each within "
                f"{self.stable_s:g} s of its start")


def describe_exit(status: int | None) -> str:
    """A ``waitpid`` status in words; None when the process was not our child (no status)."""
    if status is None:
        return "exited (status unknown: not started by this supervisor)"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


@dataclass
class ServiceRecord:
    name: str
    pid: int | None = None
    state: str = RUNNING
    started_at: float = 0.0  # monotonic
    restarts: int = 0
    quick_exits: int = 0  # in a row
    last_exit: str = ""
    last_exit_pid: int | None = None
    last_exit_at: str = ""  # wall clock, for people
    restart_at: float | None = None  # monotonic


@dataclass(frozen=True)
class Decision:
    restart_in_s: float | None  # None: given up
    message: str

    @property
    def gave_up(self) -> bool:
        return self.restart_in_s is None


@dataclass
class Supervision:
    names: tuple[str, ...]
    policy: RestartPolicy = field(default_factory=RestartPolicy)

    def __post_init__(self) -> None:
        self.records = {name: ServiceRecord(name) for name in self.names}

    def started(self, name: str, pid: int, now: float) -> None:
        """``name`` runs as ``pid`` since ``now``: started (a restart if it had exited) or adopted."""
        record = self.records[name]
        if record.state == RESTARTING:
            record.restarts += 1
        record.pid, record.state, record.started_at, record.restart_at = pid, RUNNING, now, None

    def exited(self, name: str, how: str, now: float, wall: str) -> Decision:
        """``name``'s process ended (``how``: ``describe_exit``); when to start it again, if ever."""
        record = self.records[name]
        ran_s = now - record.started_at
        record.quick_exits = 1 if ran_s >= self.policy.stable_s else record.quick_exits + 1
        record.last_exit, record.last_exit_pid, record.last_exit_at = how, record.pid, wall
        record.pid = None
        what = f"{name} (pid {record.last_exit_pid}) {how} after {ran_s:.1f} s"
        if record.quick_exits >= self.policy.give_up_after:
            record.state, record.restart_at = GAVE_UP, None
            return Decision(None, f"ALERT: {what}: {record.quick_exits} exits in a row, each within "
                                  f"{self.policy.stable_s:g} s of its start; gave up on {name} "
                                  "(`beamops-stack up` tries again)")
        delay = self.policy.delay(record.quick_exits)
        record.state, record.restart_at = RESTARTING, now + delay
        return Decision(delay, f"{what}; restart {record.restarts + 1} in {delay:g} s")

    def start_failed(self, name: str, error: str, now: float, wall: str) -> Decision:
        """Starting ``name`` raised (``error``): counted as a quick exit."""
        record = self.records[name]
        record.started_at = now
        return self.exited(name, f"could not be started: {error}", now, wall)

    def due(self, now: float) -> list[str]:
        """The services whose restart delay has passed."""
        return [r.name for r in self.records.values()
                if r.state == RESTARTING and r.restart_at is not None and r.restart_at <= now]

    def running(self) -> dict[str, int]:
        return {r.name: r.pid for r in self.records.values() if r.state == RUNNING and r.pid is not None}

    def snapshot(self, now: float) -> dict[str, dict]:
        """Per service, what ``status`` shows (JSON-ready: no monotonic times)."""
        return {r.name: {
            "pid": r.pid, "state": r.state, "restarts": r.restarts, "last_exit": r.last_exit,
            "last_exit_pid": r.last_exit_pid, "last_exit_at": r.last_exit_at,
            "restart_in_s": None if r.restart_at is None else round(max(r.restart_at - now, 0.0), 1),
        } for r in self.records.values()}


def alerts(services: dict[str, dict]) -> list[str]:
    """The lines ``status`` shows for services the supervisor gave up on (from a ``snapshot``)."""
    return [f"ALERT: the supervisor gave up on {name} after too many exits in a row (last: "
            f"{s.get('last_exit') or 'unknown'}, {s.get('last_exit_at') or '?'}); see its log; "
            "`beamops-stack up` (make up) tries again"
            for name, s in services.items() if s.get("state") == GAVE_UP]


def exit_column(service: dict | None) -> str:
    """``status``'s last-exit column for one service (from a ``snapshot``)."""
    if not service or not service.get("last_exit"):
        return "-"
    text = f"{service['last_exit']} at {service.get('last_exit_at') or '?'}"
    if service.get("state") == RESTARTING and service.get("restart_in_s") is not None:
        text += f", restarting in {service['restart_in_s']:g} s"
    elif service.get("state") == GAVE_UP:
        text += ", GAVE UP"
    return text
