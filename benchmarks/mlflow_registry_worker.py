"""MLflow's model registry measured the way bench_registry.py measures beamops; run by
bench_registry.py with the Python of the MLflow benchmark venv (``.venv-bench-mlflow``), never
with the project's: mlflow is not a project dependency.

    .venv-bench-mlflow/bin/python benchmarks/mlflow_registry_worker.py --uri sqlite:////tmp/x/mlflow.db

By default MlflowClient talks to the store in process (``sqlite:///`` or
``postgresql+psycopg://`` as tracking and registry URI): no server in between, which favours
MLflow, since beamops is measured through gRPC. With ``--server`` it starts MLflow's own
tracking server on that store (``mlflow server``, its default workers) and MlflowClient calls it
over HTTP: how a lab shares one registry between its people and programs, the setup beamops
replaces. Prints one JSON object: create_version (one client), create_version_concurrent
(``--threads`` clients; calls that fail are counted in ``errors``), resolve_alias
(get_model_version_by_alias), each with ops_per_s, p50_ms and p99_ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Iterator

from processes import stop  # benchmarks/processes.py
from timing import measure  # benchmarks/timing.py


@contextlib.contextmanager
def tracking_server(store_uri: str) -> Iterator[str]:
    """``mlflow server`` on store_uri at a free loopback port; yields its http:// URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="mlflow-artifacts-") as artifacts:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
             "--default-artifact-root", artifacts, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):  # up to a minute: it creates the schema on first start
                if process.poll() is not None:
                    raise RuntimeError(f"mlflow server exited with {process.returncode}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=1) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("mlflow server did not answer /health within a minute")
            yield url
        finally:
            stop(process, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("-n", type=int, default=1000, help="alias resolutions")
    parser.add_argument("--creates", type=int, default=250)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--server", action="store_true",
                        help="call MLflow through its tracking server (HTTP) instead of in process")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    import mlflow

    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(tracking_server(args.uri)) if args.server else args.uri
        results = run(uri, args)
    results["mlflow_version"] = mlflow.__version__
    results["via"] = "tracking server (HTTP)" if args.server else "in process"
    print(json.dumps(results))


def run(uri: str, args: argparse.Namespace) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    results: dict = {}
    for name in ("bench-seq", "bench-par"):
        client.create_registered_model(name)

    def create(name: str):
        def call(i: int) -> None:
            # A URI, not a local path: MLflow's server refuses local sources without a run.
            # await_creation_for=0: no status poll after the create (an extra read by default),
            # so MLflow does no more than beamops does.
            client.create_model_version(name, source=f"s3://bench/artifacts/{name}/{i}",
                                        tags={"auc": str(random.random())}, await_creation_for=0)
        return call

    create("bench-seq")(-1)  # warm up (first use runs lazy imports)
    results["create_version"] = measure(create("bench-seq"), args.creates, tolerate_errors=True)
    results["create_version_concurrent"] = measure(create("bench-par"), args.creates, args.threads,
                                                   tolerate_errors=True)
    client.set_registered_model_alias("bench-seq", "production", "7")

    def resolve_alias(i: int) -> None:
        client.get_model_version_by_alias("bench-seq", "production")

    resolve_alias(0)
    results["resolve_alias"] = measure(resolve_alias, args.n, tolerate_errors=True)
    results["resolve_alias_concurrent"] = measure(resolve_alias, args.n, args.threads, tolerate_errors=True)
    return results


if __name__ == "__main__":
    main()
