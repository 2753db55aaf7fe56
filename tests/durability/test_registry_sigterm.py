"""SIGTERM while 16 clients publish: in-flight calls finish, nothing acknowledged is lost, exit 0.

The clients do not retry: once the registry stops answering (UNAVAILABLE, or CANCELLED for a call
that reached it at the moment gRPC began to stop, after the drain period) each one stops. Every
call that was already in flight when the signal was sent must have succeeded (the server drains
then gives in-flight calls their grace period); the process exits 0; after a restart on the same
state every acknowledged version is there with its artifact's bytes, and there is no version
that was not acknowledged (a graceful stop answers every write it commits).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2_grpc

from tests.durability.storage import inspect
from tests.durability.writers import GONE, Tally, Writer, download, list_versions, prepare_models

pytestmark = pytest.mark.integration

CLIENTS = 16
MODELS = ["sigterm-a", "sigterm-b"]


def test_sigterm_under_load_finishes_in_flight_calls_and_loses_nothing(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'db' / 'registry.db'}", drain_s="1.0", grace_period_s="30")
    publisher, reader = tokens.metadata("publisher"), tokens.metadata("reader")
    prepare_models(proc.address, publisher, MODELS)

    tally = Tally()
    stop = threading.Event()  # never set: the clients stop when the registry is gone
    writers = [Writer(proc.address, publisher, MODELS[i % len(MODELS)], i, tally, retry=False)
               for i in range(CLIENTS)]
    threads = [threading.Thread(target=w.run_until, args=(stop, 1), daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while tally.ack_count() < 2 * CLIENTS and time.monotonic() < deadline and not tally.errors:
        time.sleep(0.01)
    assert not tally.errors, tally.errors[:5]

    signalled = time.monotonic()
    exit_code = proc.terminate()
    for thread in threads:
        thread.join(timeout=120)
    for writer in writers:
        writer.close()

    assert exit_code == 0, proc.log_tail()
    assert not any(t.is_alive() for t in threads)
    assert not tally.errors, tally.errors[:5]
    in_flight = [c for c in tally.calls if c.started < signalled < c.ended]
    print(f"{len(tally.acks)} acknowledged; {len(in_flight)} calls in flight at SIGTERM;",
          Counter(c.code.name for c in tally.calls))
    assert in_flight, "no call was in flight when the signal was sent"
    assert all(c.code == grpc.StatusCode.OK for c in in_flight), Counter(c.code.name for c in in_flight)
    # every client was stopped by the registry going away, not by an error, and only calls sent
    # after the signal were refused (UNAVAILABLE; CANCELLED for one that reached the server as it
    # began to stop, after the drain period)
    refused = [c for c in tally.calls if c.code != grpc.StatusCode.OK]
    assert len(refused) == CLIENTS and all(c.code in GONE for c in refused), Counter(c.code.name for c in refused)
    assert all(c.started > signalled for c in refused)

    proc.start()
    with grpc.insecure_channel(proc.address) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        for model in MODELS:
            acked = {a.version: a for a in tally.acks if a.model == model}
            stored = list_versions(stub, reader, model)
            assert sorted(p.version for p in stored) == sorted(acked)
            assert sorted(int(p.version.split(".")[1]) for p in stored) == list(range(len(acked)))
            for p in stored:
                assert p.primary_artifact.artifact_id == acked[p.version].artifact_id
        for ack in tally.acks:
            _meta, data = download(stub, reader, ack.artifact_id)
            assert data == ack.data and hashlib.sha256(data).hexdigest() == ack.sha256
    state = inspect(proc)
    assert state.versions == len(tally.acks) == state.create_audit_events
    assert state.temp_files == [] and state.orphan_blobs == set() and state.integrity == []
