"""compose.yaml's Dask, for real (docs/security.md, threat 13): the dask-init job, then a scheduler
and a worker started with the commands and environment compose.yaml gives them (paths moved under
tmp_path, the scheduler on 127.0.0.1), and the training service with compose's settings. A job
runs and registers over mutual TLS; clients without the cluster's certificate are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from beamops.training.cluster_secrets import main as dask_init, tls_files
from beamops.training.v1 import job_pb2

from tests.fixtures.services import free_port
from tests.fixtures.training import zmumu_mass_spec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


class Moved:
    """compose.yaml's container paths and host names, moved onto this machine."""

    def __init__(self, tmp_path: Path, tokens_file: Path, port: int) -> None:
        self.map = {"/var/lib/beamops/dask-tls": str(tmp_path / "dask-tls"),
                    "/var/lib/beamops/dask-worker": str(tmp_path / "dask-worker"),
                    "/var/lib/beamops/auth/tokens.json": str(tokens_file),
                    "dask-scheduler:8786": f"127.0.0.1:{port}"}

    def __call__(self, value: str) -> str:
        for old, new in self.map.items():
            value = value.replace(old, new)
        return value


def dask_command(entry: dict, moved: Moved, *extra: str) -> list[str]:
    command = [moved(c) for c in entry["command"]]
    assert command[0] == "dask"
    return [str(Path(sys.executable).parent / "dask"), *command[1:], *extra]


def dask_environment(entry: dict, moved: Moved) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "BEAMOPS_"))}
    environment.update({k: moved(str(v)) for k, v in entry["environment"].items()})
    return environment


@pytest.fixture
def compose_dask(tmp_path: Path, tokens):
    """Run dask-init, dask-scheduler and dask-worker as compose.yaml does; yields the moved paths."""
    port = free_port()
    moved = Moved(tmp_path, tokens.path, port)
    dask_init([moved(a) for a in SERVICES["dask-init"]["command"][3:]])
    scheduler_entry = SERVICES["dask-scheduler"]
    scheduler_command = dask_command(scheduler_entry, moved, "--host", "127.0.0.1")
    scheduler_command[scheduler_command.index("--port") + 1] = str(port)
    logs = open(tmp_path / "dask.log", "wb")
    procs = [subprocess.Popen(scheduler_command, env=dask_environment(scheduler_entry, moved),
                              stdout=logs, stderr=subprocess.STDOUT)]
    try:
        worker_entry = SERVICES["dask-worker"]
        procs.append(subprocess.Popen(dask_command(worker_entry, moved, "--host", "127.0.0.1", "--nthreads", "1"),
                                      env=dask_environment(worker_entry, moved),
                                      stdout=logs, stderr=subprocess.STDOUT))
        yield moved, wait_for_worker(moved, port, tmp_path / "dask.log")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()


def client_security(moved: Moved, tls_dir: Path | None = None):
    from distributed import Security

    files = tls_files(Path(moved("/var/lib/beamops/dask-tls")) if tls_dir is None else tls_dir)
    return Security(require_encryption=True, tls_ca_file=str(files["ca"]),
                    tls_client_cert=str(files["client_cert"]), tls_client_key=str(files["client_key"]))


def wait_for_worker(moved: Moved, port: int, log: Path) -> str:
    from distributed import Client

    address = f"tls://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with Client(address, security=client_security(moved), timeout=5) as client:
                client.wait_for_workers(1, timeout=30)
                return address
        except (OSError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"the compose Dask cluster did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture
def training_overrides(compose_dask) -> dict:
    """The training service's Dask settings from compose.yaml."""
    moved, _ = compose_dask
    prefix = "BEAMOPS_TRAINING_"
    return {k[len(prefix):].lower(): moved(v) for k, v in SERVICES["training"]["environment"].items()
            if k.startswith(prefix + "DASK_")}


async def test_a_job_runs_over_mutual_tls_with_the_compose_configuration(training_env, compose_dask, tmp_path):
    env = training_env
    moved, address = compose_dask
    assert env.settings.dask_scheduler == address and env.settings.dask_tls_ca_file is not None
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])
    job, events = await env.follow((await env.submit(zmumu_mass_spec(split, model="tls-mass", max_iter=3))).job_id)
    assert job.executor == job_pb2.EXECUTOR_DASK
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    texts = [e.log_line.text for e in events if e.WhichOneof("event") == "log_line"]
    assert any(t.startswith("running on Dask worker tls://") for t in texts)
    assert not any("no data credential" in t for t in texts)  # the worker read with dask-init's token

    from distributed import Client

    # Without the cluster's certificate, nobody gets in: no certificate, another CA's, plain TCP.
    dask_init([f"--tls-dir={tmp_path / 'other-tls'}", f"--tokens-file={tmp_path / 'other.json'}",
               f"--worker-token-file={tmp_path / 'other-token'}"])
    for where, security in ((address, None), (address, client_security(moved, tmp_path / "other-tls")),
                            (address.replace("tls://", "tcp://"), None)):
        client = Client(where, asynchronous=True, timeout=3, **({"security": security} if security else {}))
        try:
            with pytest.raises((OSError, TimeoutError, TypeError)):
                await client
        finally:
            await client.close()
    client = await Client(address, asynchronous=True, timeout=10, security=client_security(moved))
    await client.close()  # while the cluster's own client certificate still gets in
