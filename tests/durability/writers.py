"""Clients that publish parameters versions to a registry process that may die under them.

One publish = upload a small ONNX artifact (unique bytes per publish, so every artifact can be
checked against its own sha256) and create a parameters version with a unique idempotency key.
With ``retry=True`` a call that fails with UNAVAILABLE (the process died or is restarting; or
CANCELLED, see ``GONE``) is sent again after a jittered backoff: the upload from scratch, the
create with the SAME idempotency key and the same artifact, so that a create the server
committed but could not acknowledge returns the version created the first time instead of
creating a second one.
Any other status is an error of the test's subject and is kept for the assertions.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import grpc
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc

from tests.fixtures.registry import signature

N_FEATURES = 4
CALL_TIMEOUT_S = 60.0
# What a client sees when the server process dies or stops: UNAVAILABLE, or CANCELLED for a call
# that reached a gRPC server at the very moment it began to stop (these clients never cancel).
GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
# Reconnect quickly after a restart (the default first reconnect backoff is 1 s, growing to 120 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def unique_onnx(value: float) -> bytes:
    """A valid ONNX model ``y = x @ W`` (x: [batch, 4]) whose weights, hence bytes, are ``value``."""
    weights = numpy_helper.from_array(np.full((N_FEATURES, 1), value, dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "durability",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclass(frozen=True)
class Ack:
    """A publish the registry acknowledged."""

    model: str
    key: str
    version: str
    artifact_id: str
    sha256: str
    data: bytes
    replayed: bool = False  # committed by an earlier attempt whose answer was lost; the retry got it


@dataclass
class CallRecord:
    """One RPC attempt: when it started and ended (monotonic), and its status code."""

    method: str
    started: float
    ended: float
    code: grpc.StatusCode


@dataclass
class Tally:
    """What a group of writers saw, shared between their threads."""

    acks: list[Ack] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retried_creates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack_count(self) -> int:
        with self.lock:
            return len(self.acks)


class Gone(Exception):
    """The registry went away (UNAVAILABLE or CANCELLED) and this writer does not retry."""


class Writer:
    """One client (its own channel) publishing versions of one model."""

    def __init__(self, address: str, metadata, model: str, client_id: int, tally: Tally, *,
                 retry: bool, seed: int = 0) -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = registry_service_pb2_grpc.RegistryServiceStub(self.channel)
        self.metadata = metadata
        self.model = model
        self.client_id = client_id
        self.tally = tally
        self.retry = retry
        self.random = random.Random(seed * 1000 + client_id)
        self.published = 0

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: str, fn):
        """Run ``fn()``; on UNAVAILABLE retry with backoff (if retrying) or raise :class:`Gone`."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                reply = fn()
            except grpc.RpcError as exc:
                code = exc.code()
                with self.tally.lock:
                    self.tally.calls.append(CallRecord(method, started, time.monotonic(), code))
                if code not in GONE:
                    raise
                if not self.retry:
                    raise Gone(exc.details()) from None
                attempt += 1
                if method == "CreateParametersVersion":
                    with self.tally.lock:
                        self.tally.retried_creates += 1
                time.sleep(self.random.uniform(0.5, 1.0) * min(1.0, 0.02 * 2 ** attempt))
                continue
            with self.tally.lock:
                self.tally.calls.append(CallRecord(method, started, time.monotonic(), grpc.StatusCode.OK))
            return reply

    def publish_one(self) -> Ack:
        data = unique_onnx(float(self.client_id * 100_000 + self.published + 1))
        digest = hashlib.sha256(data).hexdigest()
        header = rs.UploadArtifactRequest.Header(model=self.model, format=model_pb2.ARTIFACT_FORMAT_ONNX,
                                                 filename="model.onnx", sha256=digest, size_bytes=len(data))

        def parts():
            yield rs.UploadArtifactRequest(header=header)
            for i in range(0, len(data), 128):  # several messages, so a kill can cut an upload
                yield rs.UploadArtifactRequest(chunk=data[i:i + 128])

        artifact = self._call("UploadArtifact", lambda: self.stub.UploadArtifact(
            parts(), metadata=self.metadata, timeout=CALL_TIMEOUT_S)).artifact
        key = f"durability-{self.client_id}-{self.published}-{uuid.uuid4().hex}"
        request = rs.CreateParametersVersionRequest(
            model=self.model, model_type_version="1.0.0", primary_artifact_id=artifact.artifact_id,
            idempotency_key=key, metrics={"client": float(self.client_id)})
        last_attempt = {}

        def create():
            last_attempt["at"] = time.time()
            return self.stub.CreateParametersVersion(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)

        params = self._call("CreateParametersVersion", create).parameters
        replayed = params.create_time.ToMicroseconds() / 1e6 < last_attempt["at"] - 0.001
        ack = Ack(self.model, key, params.version, artifact.artifact_id, digest, data, replayed)
        self.published += 1
        with self.tally.lock:
            self.tally.acks.append(ack)
        return ack

    def run_until(self, stop: threading.Event, minimum: int = 1) -> None:
        """Publish until ``stop`` is set (and at least ``minimum`` times); errors go to the tally."""
        try:
            while not stop.is_set() or self.published < minimum:
                self.publish_one()
        except Gone:
            pass
        except grpc.RpcError as exc:
            with self.tally.lock:
                self.tally.errors.append(f"client {self.client_id}: {exc.code().name}: {exc.details()}")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            with self.tally.lock:
                self.tally.errors.append(f"client {self.client_id}: {type(exc).__name__}: {exc}")


def prepare_models(address: str, metadata, names: list[str]) -> None:
    """Create each model and its model type 1.0.0 (signature x: [-1, 4] -> y: [-1, 1])."""
    with grpc.insecure_channel(address) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        for name in names:
            stub.CreateModel(rs.CreateModelRequest(name=name), metadata=metadata, timeout=CALL_TIMEOUT_S)
            stub.CreateModelType(rs.CreateModelTypeRequest(
                model=name, version="1.0.0", signature=signature(), framework=model_pb2.FRAMEWORK_ONNX),
                metadata=metadata, timeout=CALL_TIMEOUT_S)


def list_versions(stub, metadata, model: str) -> list[model_pb2.ParametersVersion]:
    """Every parameters version of ``model``, oldest first (all pages)."""
    out, token = [], ""
    while True:
        reply = stub.ListParametersVersions(rs.ListParametersVersionsRequest(
            model=model, page_size=1000, page_token=token, order=rs.PARAMETERS_ORDER_CREATE_TIME_ASC),
            metadata=metadata, timeout=CALL_TIMEOUT_S)
        out.extend(reply.parameters)
        token = reply.next_page_token
        if not token:
            return out


def download(stub, metadata, artifact_id: str) -> tuple[model_pb2.Artifact, bytes]:
    meta, data = None, bytearray()
    for part in stub.DownloadArtifact(rs.DownloadArtifactRequest(artifact_id=artifact_id),
                                      metadata=metadata, timeout=CALL_TIMEOUT_S):
        if part.WhichOneof("part") == "artifact":
            meta = part.artifact
        else:
            data += part.chunk
    return meta, bytes(data)
