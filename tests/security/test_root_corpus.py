"""Corrupted ROOT files (truncated, bit-flipped, overwritten runs, absurd sizes and offsets in
the file header, the tree's key and a basket's key), made from the real files in tests/data/root.

uproot decides what is readable: a damaged field that uproot does not rely on (most of the file
header, the tree's key, a basket key's copy of sizes that the branch also records) leaves the file
readable, with every value as in the intact file.

1. Read in a worker capped at 1.5 GiB of address space and 60 s of CPU (what the data service
   does: inspect, then every numeric branch in full): every file ends in a clean domain error
   (DataLoss / InvalidArgument) or reads fine; none crashes, needs more memory or spins. A
   truncated file, or one with a damaged header or key, that reads fine gives exactly the intact
   file's values; a copy cut inside the data is refused at inspection (before registration).
2. Registered through the real data service: each file is refused (DATA_LOSS or
   INVALID_ARGUMENT), or registered and then read in full or refused with DATA_LOSS; never
   INTERNAL; the service is healthy afterwards and still reads the intact file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as dpb

from .assertions import assert_clean_error
from .root_corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]
STRUCTURE = ("truncated", "header", "tree_key", "basket_key", "bad-magic")
CLEAN = {"ok", "DataLoss", "InvalidArgument"}


def _damage(name: str) -> str:
    return name.split("-", 2)[-1]


def test_corrupted_files_read_in_a_capped_worker_end_cleanly(tmp_path):
    paths = write_corpus(tmp_path / "corpus")
    assert len(paths) > 100
    files = [str(p) for p in paths.values()]
    proc = subprocess.run([sys.executable, "-m", "tests.security.root_worker", "1536", "60", *files],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(results) == len(files), (
        f"worker ended with {proc.returncode} after {len(results)} of {len(files)} files "
        f"(last: {results[-1]['name'] if results else None}); stderr: {proc.stderr[-2000:]}")
    bad = [r for r in results if r["outcome"] not in CLEAN]
    assert not bad, bad
    intact = _intact_digests(tmp_path)
    for r in results:
        source = r["name"].split("-", 2)[0] + "-" + r["name"].split("-", 2)[1]
        if _damage(r["name"]).startswith(STRUCTURE):
            if r["outcome"] == "ok":
                assert r["digest"] == intact[source], f"{r['name']} read other values than the intact file"
            else:
                assert r["outcome"] in ("DataLoss", "InvalidArgument"), r  # e.g. "has no tree"
        for leak in (str(tmp_path), "/tmp", "Traceback"):
            assert leak not in r["message"], r
    # A copy cut inside the data is refused at inspection, before it could be registered.
    cuts_data = [r for r in results if _damage(r["name"]).startswith("truncated")
                 and int(_damage(r["name"]).split("-")[1].removesuffix(".root")) < 100_000]
    assert cuts_data and all(r["outcome"] == "DataLoss" and r["stage"] == "inspect"
                             for r in cuts_data), cuts_data
    assert sum(r["outcome"] != "ok" for r in results) >= len(results) * 0.3


def _intact_digests(tmp_path: Path) -> dict[str, str]:
    from tests.real_data import HZZ, ZMUMU

    proc = subprocess.run([sys.executable, "-m", "tests.security.root_worker", "1536", "60", str(HZZ), str(ZMUMU)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    out = {}
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        assert r["outcome"] == "ok", r
        out[r["name"].removesuffix(".root")] = r["digest"]
    return out


async def test_corrupted_files_are_refused_by_the_data_service_which_stays_healthy(data_client, data_root):
    paths = write_corpus(data_root / "corpus")
    md = data_client.md()
    outcomes: dict[str, str] = {}
    for name, path in paths.items():
        source = f"corpus/{path.name}"
        try:
            version = (await data_client.register("corrupt", [source])).version
        except grpc.aio.AioRpcError as err:
            assert_clean_error(err, (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.INVALID_ARGUMENT), echo=[source])
            outcomes[name] = err.code().name
            continue
        ref = lineage_pb2.DatasetVersionRef(dataset="corrupt", version_id=version.version_id)
        try:
            rows = 0
            async for message in data_client.stub.ReadDatasetVersion(
                    dpb.ReadDatasetVersionRequest(version=ref), metadata=data_client.md("reader"), timeout=60):
                rows += message.num_rows
            outcomes[name] = f"read {rows}"
        except grpc.aio.AioRpcError as err:
            assert_clean_error(err, grpc.StatusCode.DATA_LOSS, echo=[source])
            outcomes[name] = "read DATA_LOSS"
    assert len(outcomes) == len(paths)
    refused = sum(o in ("DATA_LOSS", "INVALID_ARGUMENT", "read DATA_LOSS") for o in outcomes.values())
    assert refused >= len(paths) * 0.3, outcomes
    for name, outcome in outcomes.items():
        if outcome.startswith("read ") and outcome != "read DATA_LOSS":
            assert outcome == f"read {2421 if 'HZZ' in name else 2304}", (name, outcome)
    health = await health_pb2_grpc.HealthStub(data_client.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    good = (await data_client.register("intact", ["uproot-HZZ.root"])).version
    assert good.entry_count == 2421
    table = await data_client.read_table("intact", good.version_id, branches=["NMuon"])
    assert table.num_rows == 2421
    del md
