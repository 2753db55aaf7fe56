"""Run the whole platform on this machine: ``beamops-stack up | down | status``.

``make up`` calls ``up``: it creates the first admin token (once), writes the client config
(``~/.config/beamops/config.json``) that the SDK and CLI read, starts the four services as
background processes with their state under ``var/``, and returns when all report SERVING.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from beamops.common.v1 import auth_pb2
from beamops.config import config_path
from beamops.health import health_status

from .auth import TokenStore
from .processes import ended


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
        self.data_roots = [p.resolve() for p in (data_roots or [Path("data")])]
        self.gateway_port = GATEWAY_PORT + port_offset
        self.gateway_http_port = GATEWAY_HTTP_PORT + port_offset
        self.services = tuple(
            ServiceProcess(s.name, s.port + port_offset, s.metrics_port + port_offset)
            for s in SERVICES
        )
        self.run_dir = self.var / "run"
        self.tokens = self.var / "auth" / "tokens.json"

    def up(self, timeout: float = 60.0) -> None:
        for d in (self.run_dir, self.var / "log"):
            d.mkdir(parents=True, exist_ok=True)
        token = self._admin_token()
        for service in self.services:
            if self._pid(service) is None:
                if health_status(f"127.0.0.1:{service.port}") != "DOWN":
                    raise SystemExit(
                        f"port {service.port} ({service.name}) is in use by another program; "
                        "stop it, or run `beamops-stack up --port-offset N`"
                    )
                self._start(service)
        self._wait_serving(timeout)
        path = self._write_config(token)
        print(f"beamops is up (state in {self.var}, logs in {self.var / 'log'})")
        self.status()
        print(f"\nadmin token (saved in {path}):\n  {token}")

    def down(self, timeout: float = 30.0) -> None:
        """SIGTERM every service at once, wait for all, SIGKILL what is left after ``timeout``."""
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
        print(f"{'service':<10} {'address':<18} {'health':<12} metrics")
        for service in self.services:
            state = health_status(f"127.0.0.1:{service.port}")
            ok &= state == "SERVING"
            print(f"{service.name:<10} {'127.0.0.1:' + str(service.port):<18} {state:<12} "
                  f"http://127.0.0.1:{service.metrics_port}/metrics")
        state = health_status(f"127.0.0.1:{self.gateway_port}")  # forwarded to the inference service
        ok &= state == "SERVING"
        print(f"{'gateway':<10} {'127.0.0.1:' + str(self.gateway_port):<18} {state:<12} "
              "(inference: beamops Predict and Triton's gRPC protocol; metrics: the inference service's)")
        print(f"{'rest':<10} {'127.0.0.1:' + str(self.gateway_http_port):<18} {'':<12} "
              "(inference: Triton's HTTP/REST protocol, /v2/...)")
        return ok

    def _start(self, service: ServiceProcess) -> None:
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
        log = open(self.var / "log" / f"{service.name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"beamops.{service.name}.server"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        self._pid_file(service).write_text(str(process.pid))

    def _port_of(self, name: str) -> int:
        return next(s.port for s in self.services if s.name == name)

    def _service_token(self, name: str, role: int) -> str:
        """A fresh token for one service to call another (replaced at every start)."""
        store = TokenStore(self.tokens)
        if name in store.names():
            store.revoke(name)
        return store.create(name, role)

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending:
            pending = [s for s in pending if health_status(f"127.0.0.1:{s.port}") != "SERVING"]
            for service in pending:
                if self._pid(service) is None:
                    raise SystemExit(
                        f"{service.name} exited at start; see {self.var / 'log' / service.name}.log"
                    )
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
        try:
            pid = int(self._pid_file(service).read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


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
    parser.add_argument("command", choices=("up", "down", "status"))
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
    else:
        sys.exit(0 if stack.status() else 1)


if __name__ == "__main__":
    main()
