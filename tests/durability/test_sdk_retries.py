"""The Python SDK over a failing registry: reads ride over a restart, writes are never resent.

Reads (``idempotency_level = NO_SIDE_EFFECTS``) are retried on UNAVAILABLE and wait for the
channel to reconnect, up to their deadline; a create (side effects) fails fast with
:class:`beamops.UnavailableError` and is left to the caller, who may resend it with the same
idempotency key (tests/durability/test_registry_crash.py does exactly that).
"""

from __future__ import annotations

import threading
import time

import pytest

import beamops
from beamops.api.calls import call
from beamops.errors import NotFoundError, UnavailableError
from beamops.registry.v1 import registry_service_pb2 as pb

from tests.durability.writers import prepare_models, unique_onnx
from tests.fakes.flaky_registry import FlakyRegistry, serve

pytestmark = pytest.mark.integration


def _restart_later(proc, delay_s: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), proc.start()), daemon=True)
    thread.start()
    return thread


def test_a_read_is_retried_across_a_registry_restart(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}")
    prepare_models(proc.address, tokens.metadata("publisher"), ["restart-read"])
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(unique_onnx(1.5))
    with beamops.Client(tokens.publisher, registry_address=proc.address) as client:
        published = client.registry.publish_onnx("restart-read", model_file, idempotency_key="k1")
        client.registry.set_alias("restart-read", "staging", published.version)

        proc.kill()
        restarter = _restart_later(proc, 1.0)  # the read below starts while nothing listens
        assert not proc.running()
        resolved = client.registry.resolve_alias("restart-read", "staging")
        restarter.join(timeout=120)
        assert resolved.version == published.version
        assert proc.starts == 2  # it was answered by the restarted process
        assert client.registry.get_model("restart-read").name == "restart-read"


def test_a_create_is_not_retried_across_a_restart(registry_process, tmp_path, tokens):
    proc = registry_process(f"sqlite:///{tmp_path / 'registry.db'}")
    with beamops.Client(tokens.publisher, registry_address=proc.address) as client:
        client.registry.create_model("before-the-crash")
        proc.kill()
        restarter = _restart_later(proc, 1.0)
        with pytest.raises(UnavailableError):
            client.registry.create_model("during-the-crash")
        restarter.join(timeout=120)
        # the failed create left nothing, and nothing resent it once the registry was back
        with pytest.raises(NotFoundError):
            client.registry.get_model("during-the-crash")
        assert client.registry.get_model("before-the-crash").name == "before-the-crash"


@pytest.fixture
def flaky():
    registry = FlakyRegistry({"GetModel": 2, "CreateModel": 1, "CreateParametersVersion": 1})
    server, port = serve(registry)
    try:
        yield registry, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_reads_are_retried_on_unavailable_and_creates_are_sent_once(flaky):
    registry, address = flaky
    with beamops.Client("any-token", registry_address=address) as client:
        assert client.registry.get_model("jets").name == "jets"
        assert registry.attempts["GetModel"] == 3  # two UNAVAILABLE, then the answer

        with pytest.raises(UnavailableError) as err:
            client.registry.create_model("jets")
        assert "restarting" in str(err.value)
        with pytest.raises(UnavailableError):
            call(client.stub("registry").CreateParametersVersion, pb.CreateParametersVersionRequest(
                model="jets", model_type_version="1.0.0", idempotency_key="once"))
    assert registry.attempts["CreateModel"] == 1
    assert registry.attempts["CreateParametersVersion"] == 1
