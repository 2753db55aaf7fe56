"""Run the whole platform on this machine: ``beamops-stack up | down | status``.

``make up`` calls ``up``: it creates the first admin token (once), writes the client config
(``~/.config/beamops/config.json``) that the SDK and CLI read, starts a supervisor process
(``beamops-stack supervise``) that starts the four services as background processes with their
state under ``var/`` and restarts any that exits (with backoff, see ``supervisor.py``), and
returns when all report SERVING. ``down`` stops the supervisor first, then the services.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from beamops.common.v1 import auth_pb2
from beamops.config import config_path
from beamops.health import health_status

from .auth import TokenStore
from .processes import command_line, ended
from .supervisor import GAVE_UP, RESTARTING, RestartPolicy, Supervision, alerts, describe_exit, exit_column


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    port: int
    metrics_port: int

    @property
    def env_prefix(self) -> str:
        return f"BEAMOPS_{self.name.upper()}_"


SERVICES = (
    ServiceProcess("registry", 50051, 9101),
    ServiceProcess("data", 50052, 9102),
    ServiceProcess("training", 50053, 9103),
    ServiceProcess("inference", 50054, 9104),
)
ADMIN_TOKEN_NAME = "admin"
GATEWAY_PORT = 50055  # the inference service's gateway: Predict served by compiled code
GATEWAY_HTTP_PORT = 8000  # the gateway's Open Inference Protocol REST front (Triton's HTTP port)


class Stack:
    """The four services as background processes; ``port_offset`` shifts every port (tests)."""

    def __init__(self, var_dir: Path, port_offset: int = 0, data_roots: list[Path] | None = None) -> None:
        self.var = var_dir.resolve()
        self.port_offset = port_offset
        self.data_roots = [p.resolve() for p in (data_roots or [Path("data")])]
        self.gateway_port = GATEWAY_PORT + port_offset
        self.gateway_http_port = GATEWAY_HTTP_PORT + port_offset
        self.services = tuple(
            ServiceProcess(s.name, s.port + port_offset, s.metrics_port + port_offset)
            for s in SERVICES
        )
        self.run_dir = self.var / "run"
        self.tokens = self.var / "auth" / "tokens.json"
        self.supervisor_pid_file = self.run_dir / "supervisor.pid"
        self.state_file = self.run_dir / "supervisor.json"  # written by the supervisor, read by status

    def up(self, timeout: float = 60.0) -> None:
        for d in (self.run_dir, self.var / "log"):
            d.mkdir(parents=True, exist_ok=True)
        token = self._admin_token()
        supervisor = self._supervisor_pid()
        if supervisor is not None and alerts(self._state(supervisor).get("services", {})):
            self._stop_supervisor()  # it gave up on a service: a new one tries again
            supervisor = None
        if supervisor is None:
            # A new supervisor adopts the services still running and starts the others.
            for service in self.services:
                if self._pid(service) is None and health_status(f"127.0.0.1:{service.port}") != "DOWN":
                    raise SystemExit(
                        f"port {service.port} ({service.name}) is in use by another program; "
                        "stop it, or run `beamops-stack up --port-offset N`"
                    )
            supervisor = self._start_supervisor()
        self._wait_serving(timeout, supervisor)
        path = self._write_config(token)
        print(f"beamops is up (state in {self.var}, logs in {self.var / 'log'})")
        self.status()
        print(f"\nadmin token (saved in {path}):\n  {token}")

    def down(self, timeout: float = 30.0) -> None:
        """Stop the supervisor (nothing restarts what is stopped next), then SIGTERM every service
        at once, wait for all, SIGKILL what is left after ``timeout``."""
        self._stop_supervisor(timeout)
        stopping = {s: pid for s in self.services if (pid := self._pid(s)) is not None}
        for pid in stopping.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in stopping.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for service, pid in stopping.items():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            self._pid_file(service).unlink(missing_ok=True)
            print(f"stopped {service.name}")

    def status(self) -> bool:
        ok = True
        supervisor = self._supervisor_pid()
        supervision = self._state(supervisor) if supervisor is not None else {}
        records = supervision.get("services", {})
        print(f"{'service':<10} {'address':<18} {'health':<12} {'restarts':<9} {'metrics':<31} last exit")
        for service in self.services:
            state = health_status(f"127.0.0.1:{service.port}")
            ok &= state == "SERVING"
            record = records.get(service.name)
            restarts = str(record["restarts"]) if record else "-"
            metrics = f"http://127.0.0.1:{service.metrics_port}/metrics"
            print(f"{service.name:<10} {'127.0.0.1:' + str(service.port):<18} {state:<12} {restarts:<9} "
                  f"{metrics:<31} {exit_column(record)}")
        state = health_status(f"127.0.0.1:{self.gateway_port}")  # forwarded to the inference service
        ok &= state == "SERVING"
        print(f"{'gateway':<10} {'127.0.0.1:' + str(self.gateway_port):<18} {state:<12} {'':<9} "
              "(inference: beamops Predict and Triton's gRPC protocol; metrics: the inference service's)")
        print(f"{'rest':<10} {'127.0.0.1:' + str(self.gateway_http_port):<18} {'':<12} {'':<9} "
              "(inference: Triton's HTTP/REST protocol, /v2/...)")
        log = self.var / "log" / "supervisor.log"
        if supervisor is None:
            ok = False
            if any(self._pid(s) is not None for s in self.services):
                print("ALERT: the supervisor is not running: nothing restarts a service that exits; "
                      "`beamops-stack up` (make up) starts it again")
            else:
                print("supervisor: not running")
        else:
            print(f"supervisor: running (pid {supervisor}); {supervision.get('policy', '')}; log {log}")
            for line in alerts(records):
                ok = False
                print(line)
        return ok

    def _start(self, service: ServiceProcess) -> int:
        env = dict(os.environ)
        p = service.env_prefix
        env.update({
            f"{p}PORT": str(service.port),
            f"{p}METRICS_PORT": str(service.metrics_port),
            f"{p}VAR_DIR": str(self.var / service.name),
            f"{p}TOKENS_FILE": str(self.tokens),
        })
        if service.name == "training":
            env[f"{p}DATA_ADDRESS"] = f"127.0.0.1:{self._port_of('data')}"
            env[f"{p}REGISTRY_ADDRESS"] = f"127.0.0.1:{self._port_of('registry')}"
        if service.name == "inference":
            env[f"{p}REGISTRY_ADDRESS"] = f"127.0.0.1:{self._port_of('registry')}"
            env[f"{p}REGISTRY_TOKEN"] = self._service_token("inference-service", auth_pb2.ROLE_PUBLISHER)
            env.setdefault(f"{p}GATEWAY_PORT", str(self.gateway_port))
            env.setdefault(f"{p}GATEWAY_HTTP_PORT", str(self.gateway_http_port))
        if service.name == "data":
            for root in self.data_roots:
                root.mkdir(parents=True, exist_ok=True)
            env.setdefault(f"{p}DATA_ROOTS", json.dumps([str(r) for r in self.data_roots]))
        with open(self.var / "log" / f"{service.name}.log", "ab") as log:  # the child keeps its copy
            process = subprocess.Popen(
                [sys.executable, "-m", f"beamops.{service.name}.server"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )
        self._pid_file(service).write_text(str(process.pid))
        return process.pid

    def _port_of(self, name: str) -> int:
        return next(s.port for s in self.services if s.name == name)

    def _service_token(self, name: str, role: int) -> str:
        """A fresh token for one service to call another (replaced at every start)."""
        store = TokenStore(self.tokens)
        if name in store.names():
            store.revoke(name)
        return store.create(name, role)

    def _wait_serving(self, timeout: float, supervisor: int) -> None:
        deadline = time.monotonic() + timeout
        # Exits the supervisor had seen before this wait are not this start's: a process it
        # reports exited that is not one of these started after `up` began, and failed.
        seen = {name: {r.get("pid"), r.get("last_exit_pid")}
                for name, r in self._state(supervisor).get("services", {}).items()}
        pending = list(self.services)
        while pending:
            pending = [s for s in pending if health_status(f"127.0.0.1:{s.port}") != "SERVING"]
            if pending and not _alive(supervisor):
                raise SystemExit(f"the supervisor exited; see {self.var / 'log' / 'supervisor.log'}")
            records = self._state(supervisor).get("services", {})
            for service in pending:
                record = records.get(service.name, {})
                log = self.var / "log" / f"{service.name}.log"
                if record.get("state") == GAVE_UP:
                    raise SystemExit(f"{service.name} keeps exiting ({record.get('last_exit')}); "
                                     f"the supervisor gave up on it; see {log}")
                exited = record.get("last_exit_pid")
                if exited is not None and exited not in seen.get(service.name, set()):
                    raise SystemExit(f"{service.name} exited at start ({record.get('last_exit')}); see {log} "
                                     "(the supervisor restarts it with backoff; `beamops-stack down` stops all)")
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise SystemExit(f"not SERVING after {timeout:.0f}s: {names}; see {self.var / 'log'}")
            time.sleep(0.2)
        # The inference service starts its gateway once it serves itself.
        while health_status(f"127.0.0.1:{self.gateway_port}") != "SERVING":
            if time.monotonic() > deadline:
                raise SystemExit(f"the inference gateway is not SERVING after {timeout:.0f}s; see "
                                 f"{self.var / 'log' / 'inference'}.log")
            time.sleep(0.2)

    def _admin_token(self) -> str:
        """The admin token from the client config if it still works, else a new one."""
        store = TokenStore(self.tokens)
        try:
            token = json.loads(config_path().read_text())["token"]
            if store.authenticate(token) is not None:
                return token
        except (OSError, KeyError, ValueError):
            pass
        if ADMIN_TOKEN_NAME in store.names():
            store.revoke(ADMIN_TOKEN_NAME)  # its secret is lost: replace it
        return store.create(ADMIN_TOKEN_NAME, auth_pb2.ROLE_ADMIN)

    def _write_config(self, token: str) -> Path:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"token": token} | {
            f"{s.name}_address": f"127.0.0.1:{s.port}" for s in self.services
        }
        # The SDK and CLI call inference through its gateway: Predict served by compiled code,
        # every other call forwarded to the service.
        config["inference_address"] = f"127.0.0.1:{self.gateway_port}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=2)
        return path

    def _pid_file(self, service: ServiceProcess) -> Path:
        return self.run_dir / f"{service.name}.pid"

    def _pid(self, service: ServiceProcess) -> int | None:
        return _running(self._pid_file(service), f"beamops.{service.name}.server")

    def _supervisor_pid(self) -> int | None:
        return _running(self.supervisor_pid_file, "beamops.runtime.stack", "supervise")

    def _start_supervisor(self) -> int:
        command = [sys.executable, "-m", "beamops.runtime.stack", "--var-dir", str(self.var),
                   "--port-offset", str(self.port_offset)]
        for root in self.data_roots:
            command += ["--data-root", str(root)]
        with open(self.var / "log" / "supervisor.log", "ab") as log:
            process = subprocess.Popen([*command, "supervise"], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.supervisor_pid_file.write_text(str(process.pid))
        return process.pid

    def _stop_supervisor(self, timeout: float = 30.0) -> None:
        """SIGTERM the supervisor and wait: it restarts nothing more and leaves the services be."""
        pid = self._supervisor_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            print("stopped the supervisor")
        self.supervisor_pid_file.unlink(missing_ok=True)

    def _state(self, supervisor: int) -> dict:
        """The state file, if that supervisor wrote it (not one left by an earlier one)."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) and state.get("supervisor_pid") == supervisor else {}

    def supervise(self, policy: RestartPolicy | None = None) -> None:
        """The supervisor process (``up`` starts it, ``down`` stops it with SIGTERM): starts the
        services that are not running, adopts those that are, and restarts any that exits, as
        ``policy`` says; every start, exit and restart goes to its log (var/log/supervisor.log)
        and its state to ``state_file``. SIGTERM: it stops restarting and exits, leaving the
        services to ``down``."""
        logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                            format="%(asctime)s %(levelname)s supervisor: %(message)s")
        log = logging.getLogger("beamops.stack.supervisor")
        stopping: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: stopping.append(number))
        book = Supervision(tuple(s.name for s in self.services), policy or RestartPolicy())
        children: set[int] = set()
        log.info("pid %d supervises %s; %s", os.getpid(), ", ".join(book.names), book.policy.describe())
        for service in self.services:
            if stopping:
                break
            pid = self._pid(service)
            if pid is None:
                self._launch(service, book, children, log)
            else:
                book.started(service.name, pid, time.monotonic())
                log.info("%s already runs (pid %d): adopted", service.name, pid)
        self._write_state(book)
        by_name = {s.name: s for s in self.services}
        while not stopping:
            changed = False
            for name, pid in book.running().items():
                how = _exit_of(pid, children)
                if how is not None:
                    decision = book.exited(name, how, time.monotonic(), _now())
                    (log.error if decision.gave_up else log.warning)(decision.message)
                    changed = True
            for name in book.due(time.monotonic()):
                if stopping:
                    break
                self._launch(by_name[name], book, children, log)
                changed = True
            if changed:
                self._write_state(book)
            time.sleep(0.2)
        log.info("signal %d: stopping; no more restarts (the services keep running until "
                 "`beamops-stack down` stops them)", stopping[0])
        self._write_state(book, running=False)

    def _launch(self, service: ServiceProcess, book: Supervision, children: set[int],
                log: logging.Logger) -> None:
        restart = book.records[service.name].state == RESTARTING
        try:
            pid = self._start(service)
        except Exception as exc:  # noqa: BLE001 - any failure to start counts as an exit
            log.error(book.start_failed(service.name, repr(exc), time.monotonic(), _now()).message)
            return
        children.add(pid)
        book.started(service.name, pid, time.monotonic())
        if restart:
            log.warning("%s restarted (pid %d, restart %d)", service.name, pid,
                        book.records[service.name].restarts)
        else:
            log.info("%s started (pid %d)", service.name, pid)

    def _write_state(self, book: Supervision, running: bool = True) -> None:
        """Atomically (a reader sees the old file or the new one, never half of one)."""
        state = {"supervisor_pid": os.getpid(), "running": running, "updated_at": _now(),
                 "policy": book.policy.describe(), "services": book.snapshot(time.monotonic())}
        temporary = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2))
        os.replace(temporary, self.state_file)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _running(pid_file: Path, *command: str) -> int | None:
    """The pid in ``pid_file`` if that process runs and is the one written there: its command line
    has ``command`` (after a reboot, the pid may be another program's)."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    argv = command_line(pid)
    if argv is not None and not all(word.encode() in argv for word in command):
        return None
    return pid


def _exit_of(pid: int, children: set[int]) -> str | None:
    """How ``pid`` ended, or None while it runs. Our children give their wait status; a process
    adopted from an earlier supervisor can only be seen gone."""
    if pid in children:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            children.discard(pid)
            return describe_exit(None)
        if not done:
            return None
        children.discard(pid)
        return describe_exit(status)
    return describe_exit(None) if ended(pid) else None


def _alive(pid: int) -> bool:
    # Reap it first if it is our zombie; one that is not ours (a killed service whose parent
    # `up` already exited, waiting for init) has ended all the same.
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    return not ended(pid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="beamops-stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "supervise"),
                        help="supervise: the supervisor process that `up` starts (not to run by hand)")
    parser.add_argument("--var-dir", type=Path, default=Path("var"))
    parser.add_argument("--port-offset", type=int, default=0, help="shift every port (tests)")
    parser.add_argument("--data-root", type=Path, action="append",
                        help="folder the data service may read local files from (repeatable; default ./data)")
    args = parser.parse_args(argv)
    stack = Stack(args.var_dir, args.port_offset, args.data_root)
    if args.command == "up":
        stack.up()
    elif args.command == "down":
        stack.down()
    elif args.command == "supervise":
        stack.supervise()
    else:
        sys.exit(0 if stack.status() else 1)


if __name__ == "__main__":
    main()
