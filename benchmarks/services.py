"""beamops services as their own processes, for the benchmarks (import after ROOT is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from beamops.health import health_status
from processes import stop  # benchmarks/processes.py

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def service(name: str, port: int, work: Path, **settings: str) -> Iterator[subprocess.Popen]:
    """``beamops.<name>.server`` on ``port`` with its state in ``work/<name>``, the tokens file
    ``work/tokens.json``, its log in ``work/<name>.log`` and ``settings`` as BEAMOPS_<NAME>_*
    variables; yields once it answers health checks SERVING, and stops it afterwards."""
    prefix = f"BEAMOPS_{name.upper()}_"
    env = {**os.environ, f"{prefix}PORT": str(port), f"{prefix}VAR_DIR": str(work / name),
           f"{prefix}TOKENS_FILE": str(work / "tokens.json"), f"{prefix}LOG_LEVEL": "WARNING",
           **{f"{prefix}{k.upper()}": v for k, v in settings.items()}}
    log = work / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"beamops.{name}.server"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while health_status(f"127.0.0.1:{port}") != "SERVING":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {name} service did not start; see {log}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc, 60)
