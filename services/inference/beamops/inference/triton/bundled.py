"""Starts and stops the bundled Triton Inference Server (CPU, Python backend) as a subprocess.

The server is the ``tritonserver`` binary (2.51) shipped in the ``nvidia-pytriton==0.7.0`` wheel,
installed by ``services/inference/triton/install.sh`` into its own virtual environment
(``.venv-triton``: the wheel pins numpy<2 while the platform uses numpy 2). This module runs in the
platform's environment, imports only the standard library, and never imports from that venv.

How the Python-backend stub gets the right interpreter and packages (see :func:`environment`):

* ``LD_LIBRARY_PATH`` starts with the interpreter's own ``LIBDIR`` (the venv's base Python, e.g.
  ``~/.pyenv/versions/3.11.7/lib``): the stub links ``libpython3.11.so.1.0``, and the system's copy
  is an older 3.11 whose ABI differs (the stub dies with an undefined ``_recursion_count``). Then
  comes the wheel's ``nvidia_pytriton.libs/`` (libtritonserver, libarchive, ...): the backend
  directory holds symlinks, so the RPATHs relative to ``$ORIGIN`` of ``libtriton_python.so`` do
  not resolve on their own.
* ``PATH`` starts with ``<venv>/bin``. The stub embeds CPython without setting a home or program
  path, so CPython looks up ``python3`` on ``PATH``, finds the venv's ``python3`` next to
  ``pyvenv.cfg`` and starts as that venv: ``sys.prefix`` is the venv, its site-packages (numpy<2,
  onnxruntime) are importable in ``model.py``. This is what pytriton itself does.
* ``PYTHONHOME``, ``PYTHONPATH`` and ``VIRTUAL_ENV`` from the caller are dropped, and
  ``PYTHONNOUSERSITE=1`` is set, so nothing of the platform's numpy-2 environment leaks into the
  stub. ``EXECUTION_ENV_PATH`` (conda-pack tarballs) is not needed.
* Every ``BEAMOPS_*`` variable is dropped: the stubs run model code, and the service's settings
  hold its credentials (``BEAMOPS_INFERENCE_REGISTRY_TOKEN``).

Triton binds to 127.0.0.1 by default: its repository, logging and shared-memory APIs must not be
reachable by clients; the inference service is the only caller.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "beamops-triton.json"
SHM_DIR = "/dev/shm"


class TritonStartError(RuntimeError):
    """The bundled Triton exited, or did not become ready, while starting."""


@dataclass(frozen=True)
class TritonPaths:
    venv: Path
    backend_dir: Path
    model_repository: Path
    tritonserver: Path
    library_path: tuple[Path, ...]  # LD_LIBRARY_PATH entries, in order
    library: Path | None = None  # libtritonserver.so, which the tritonserver binary runs on

    @classmethod
    def from_install(cls, venv: Path | str, model_repository: Path | str) -> TritonPaths:
        """Reads the manifest that install.sh writes into the venv."""
        venv = Path(venv)
        manifest = venv / MANIFEST
        try:
            data = json.loads(manifest.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{manifest} missing: run services/inference/triton/install.sh"
            ) from None
        return cls(
            venv=venv,
            backend_dir=Path(data["backend_dir"]),
            model_repository=Path(model_repository),
            tritonserver=Path(data["tritonserver"]),
            library_path=(Path(data["python_libdir"]), Path(data["server_libs"])),
            library=next(iter(sorted(Path(data["server_libs"]).glob("libtritonserver*.so"))), None),
        )


def new_shm_prefix() -> str:
    """A fresh name prefix for one Triton's Python-backend shared-memory regions."""
    return f"beamops_triton_{secrets.token_hex(6)}_"


def command(
    paths: TritonPaths,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    *,
    host: str = "127.0.0.1",
    exit_timeout_s: int = 10,
    shm_prefix: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The tritonserver command line: explicit model control, no model loaded at start.

    ``shm_prefix`` names the Python backend's /dev/shm regions, so that leftovers of a server that
    was killed can be found and removed.
    """
    shm = [f"--backend-config=python,shm-region-prefix-name={shm_prefix}"] if shm_prefix else []
    return [
        str(paths.tritonserver),
        f"--model-repository={paths.model_repository}",
        f"--backend-directory={paths.backend_dir}",
        "--model-control-mode=explicit",
        "--disable-auto-complete-config",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        "--pinned-memory-pool-byte-size=0",
        f"--exit-timeout-secs={exit_timeout_s}",
        "--log-verbose=0",
        *shm,
        *extra_args,
    ]


def environment(paths: TritonPaths, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for tritonserver and its Python-backend stubs (see the module docstring),
    without the caller's beamops settings and secrets (``BEAMOPS_*``: the service's registry token
    among them): the stubs run model code, which must find no credential to use."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("BEAMOPS_")}
    for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["LD_LIBRARY_PATH"] = _join([str(p) for p in paths.library_path], env.get("LD_LIBRARY_PATH"))
    env["PATH"] = _join([str(paths.venv / "bin")], env.get("PATH", os.defpath))
    return env


def _join(first: list[str], rest: str | None) -> str:
    return os.pathsep.join(first + ([rest] if rest else []))


class BundledTriton:
    """One tritonserver process in its own process group (the stubs are its children)."""

    def __init__(
        self,
        paths: TritonPaths,
        grpc_port: int,
        http_port: int,
        metrics_port: int,
        *,
        host: str = "127.0.0.1",
        log_path: Path | str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.paths = paths
        self.host = host
        self.grpc_port, self.http_port, self.metrics_port = grpc_port, http_port, metrics_port
        self.log_path = Path(log_path) if log_path is not None else None
        self.shm_prefix = new_shm_prefix()
        self._args = command(
            paths, grpc_port, http_port, metrics_port,
            host=host, shm_prefix=self.shm_prefix, extra_args=extra_args,
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError("bundled Triton is already running")
        self.stop()  # after a crash: end its orphaned stubs, remove its shared memory
        if not self.paths.tritonserver.exists():
            raise TritonStartError(f"{self.paths.tritonserver} missing: run install.sh")
        self.paths.model_repository.mkdir(parents=True, exist_ok=True)
        log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")
        try:
            self._process = subprocess.Popen(
                self._args,
                env=environment(self.paths),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,  # own process group: stop() reaches the stubs too
            )
        finally:
            if log is not None:
                log.close()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def is_ready(self) -> bool:
        url = f"http://{self.host}:{self.http_port}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Returns when Triton answers ready; raises TritonStartError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                code = self.returncode
                raise TritonStartError(f"tritonserver exited with code {code}{self._log_tail()}")
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                tail = self._log_tail()
                raise TritonStartError(f"tritonserver not ready after {timeout} s{tail}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Triton unloads models and ends its stubs), then SIGKILL to the whole group;
        removes the group's shared-memory regions. Safe to call more than once."""
        process = self._process
        if process is None:
            return
        pgid = process.pid  # start_new_session: the group id is the server's pid
        if process.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                process.wait()
        end_stubs(pgid, self.shm_prefix)

    def __enter__(self) -> BundledTriton:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "; log tail:\n" + "\n".join(tail)


def end_stubs(pgid: int, shm_prefix: str) -> None:
    """After the process that ran Triton (and led process group ``pgid``) ended: ends the
    Python-backend stubs it left behind, which would hold shared memory, and removes its
    shared-memory regions."""
    deadline = time.monotonic() + 2.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
    for region in Path(SHM_DIR).glob(shm_prefix + "*"):
        region.unlink(missing_ok=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
