"""The registry SIGKILLed five times under 32 concurrent writers, on SQLite and on PostgreSQL.

32 clients (threads, one channel each, 8 per model) publish parameters versions: upload a small
ONNX artifact with unique bytes, then CreateParametersVersion with a unique idempotency key;
on UNAVAILABLE they retry with backoff, the create with the SAME key. Meanwhile the registry
process is killed with SIGKILL at five random moments and restarted on the same port and state.
Afterwards, with every client's last publish acknowledged:

- every acknowledged version exists exactly once, with the artifact it was created with; no
  version exists that was not acknowledged; the versions of each model are 1.0, 1.1, ... 1.(n-1)
  without a gap or a duplicate;
- every artifact downloads with bytes equal to what was uploaded and to its sha256;
- the database is consistent: one ``parameters.create`` audit event and one idempotency key per
  version, no version without its artifact row, SQLite's integrity and foreign-key checks clean;
- after a final restart no temporary upload file and no blob without an artifact row remains,
  and every artifact row's blob is present and intact.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, defaultdict

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc

from tests.durability.storage import inspect
from tests.durability.writers import CALL_TIMEOUT_S, Tally, Writer, download, list_versions, prepare_models

pytestmark = pytest.mark.integration

CLIENTS = 32
MODELS = [f"crash-model-{i}" for i in range(4)]
KILLS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_database")
    return f"sqlite:///{tmp_path / 'db' / 'registry.db'}"


def test_sigkill_under_concurrent_writers_loses_and_duplicates_nothing(database_url, registry_process, tokens):
    proc = registry_process(database_url)
    publisher, reader = tokens.metadata("publisher"), tokens.metadata("reader")
    prepare_models(proc.address, publisher, MODELS)

    seed = random.randrange(1_000_000)
    print(f"random seed {seed}")
    chance = random.Random(seed)
    tally = Tally()
    stop = threading.Event()
    writers = [Writer(proc.address, publisher, MODELS[i % len(MODELS)], i, tally, retry=True, seed=seed)
               for i in range(CLIENTS)]
    threads = [threading.Thread(target=w.run_until, args=(stop, 2), daemon=True) for w in writers]
    for thread in threads:
        thread.start()

    acks_at_kill, leftovers_at_kill = [], []
    try:
        for _ in range(KILLS):
            # a random moment once the restarted registry is taking writes again
            floor = tally.ack_count() + chance.randint(1, 3 * CLIENTS)
            deadline = time.monotonic() + 120
            while tally.ack_count() < floor and time.monotonic() < deadline and not tally.errors:
                time.sleep(0.005)
            time.sleep(chance.uniform(0, 0.3))
            proc.kill()
            acks_at_kill.append(tally.ack_count())
            # (the database is left alone until the registry itself recovers it)
            leftovers_at_kill.append(len(list((proc.artifacts_dir / "tmp").iterdir())))
            time.sleep(chance.uniform(0, 0.5))
            proc.start()
        # a last stretch of load after the fifth restart, then every client finishes its publish
        floor = tally.ack_count() + CLIENTS
        deadline = time.monotonic() + 120
        while tally.ack_count() < floor and time.monotonic() < deadline and not tally.errors:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
        for writer in writers:
            writer.close()
    print(f"acks at each kill {acks_at_kill}, total {len(tally.acks)}; create retries "
          f"{tally.retried_creates}, of which answered from an earlier commit "
          f"{sum(a.replayed for a in tally.acks)}; temp upload files right after each kill {leftovers_at_kill}")
    print("status codes seen:", Counter(c.code.name for c in tally.calls))

    assert not tally.errors, tally.errors[:5]
    assert not any(t.is_alive() for t in threads), "a client never got its publish acknowledged"
    assert proc.starts == KILLS + 1
    # the load went on through every restart: writes were acknowledged between consecutive kills
    counts = [0, *acks_at_kill, len(tally.acks)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    # clients really saw the registry die (UNAVAILABLE) and retried
    assert any(c.code == grpc.StatusCode.UNAVAILABLE for c in tally.calls)

    # A final crash and restart: the start-up clean-up must leave nothing behind.
    proc.kill()
    proc.start()

    by_model = defaultdict(list)
    for ack in tally.acks:
        by_model[ack.model].append(ack)
    with grpc.insecure_channel(proc.address) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        for model in MODELS:
            acked = by_model[model]
            stored = list_versions(stub, reader, model)
            versions = [p.version for p in stored]
            # zero duplicated: one acknowledgement per version, one version per acknowledgement
            assert len(set(a.version for a in acked)) == len(acked), \
                [v for v, n in Counter(a.version for a in acked).items() if n > 1]
            assert len(versions) == len(set(versions))
            # zero lost, and nothing that was never acknowledged
            assert set(versions) == {a.version for a in acked}
            # gap-free: 1.0, 1.1, ..., 1.(n-1)
            assert sorted(int(v.split(".")[1]) for v in versions) == list(range(len(acked)))
            assert {v.split(".")[0] for v in versions} == {"1"}
            primary = {p.version: p.primary_artifact.artifact_id for p in stored}
            for ack in acked:
                assert primary[ack.version] == ack.artifact_id, (ack.version, ack.key)

        for ack in tally.acks:
            meta, data = download(stub, reader, ack.artifact_id)
            assert meta.sha256 == ack.sha256
            assert hashlib.sha256(data).hexdigest() == ack.sha256
            assert data == ack.data
        # a retried create with an already used key still answers with the first version
        first = tally.acks[0]
        again = stub.CreateParametersVersion(rs.CreateParametersVersionRequest(
            model=first.model, model_type_version="1.0.0", primary_artifact_id=first.artifact_id,
            idempotency_key=first.key, metrics={"client": float(_client_of(first.key))}),
            metadata=publisher, timeout=CALL_TIMEOUT_S).parameters
        assert again.version == first.version

    state = inspect(proc)
    assert state.versions == len(tally.acks)
    assert state.create_audit_events == len(tally.acks)
    assert state.idempotency_keys == len(tally.acks)
    assert state.versions_without_artifact == 0
    assert state.integrity == []
    assert state.temp_files == []
    assert state.orphan_blobs == set()
    assert state.missing_blobs == set()
    assert state.corrupt_blobs() == []
    assert proc.terminate() == 0


def _client_of(key: str) -> int:
    return int(key.split("-")[1])
