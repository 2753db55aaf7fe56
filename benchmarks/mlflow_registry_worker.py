"""MLflow's model registry measured the way bench_registry.py measures beamops; run by
bench_registry.py with the Python of the MLflow benchmark venv (``.venv-bench-mlflow``), never
with the project's: mlflow is not a project dependency.

    .venv-bench-mlflow/bin/python benchmarks/mlflow_registry_worker.py --uri sqlite:////tmp/x/mlflow.db

MlflowClient talks to the store in process (``sqlite:///`` or ``postgresql+psycopg://`` as
tracking and registry URI): no HTTP server in between, which favours MLflow, since beamops is
measured through gRPC. Prints one JSON object: create_version (one client), create_version_concurrent
(``--threads`` clients; calls that fail are counted in ``errors``), resolve_alias
(get_model_version_by_alias), each with ops_per_s, p50_ms and p99_ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import random

from timing import measure  # benchmarks/timing.py


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("-n", type=int, default=1000, help="alias resolutions")
    parser.add_argument("--creates", type=int, default=250)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=args.uri, registry_uri=args.uri)
    results: dict = {"mlflow_version": mlflow.__version__}
    for name in ("bench-seq", "bench-par"):
        client.create_registered_model(name)

    def create(name: str):
        def call(i: int) -> None:
            client.create_model_version(name, source=f"/bench/artifacts/{name}/{i}",
                                        tags={"auc": str(random.random())})
        return call

    create("bench-seq")(-1)  # warm up (first use runs lazy imports)
    results["create_version"] = measure(create("bench-seq"), args.creates, tolerate_errors=True)
    results["create_version_concurrent"] = measure(create("bench-par"), args.creates, args.threads, tolerate_errors=True)
    client.set_registered_model_alias("bench-seq", "production", "7")

    def resolve_alias(i: int) -> None:
        client.get_model_version_by_alias("bench-seq", "production")

    resolve_alias(0)
    results["resolve_alias"] = measure(resolve_alias, args.n, tolerate_errors=True)
    results["resolve_alias_concurrent"] = measure(resolve_alias, args.n, args.threads, tolerate_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
