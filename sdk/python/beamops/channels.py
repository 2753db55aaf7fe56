"""gRPC channels for the SDK: the token on every call, deadlines, and retries of safe calls.

Retries come from the contracts: every RPC marked ``idempotency_level = NO_SIDE_EFFECTS`` is
retried on UNAVAILABLE with exponential backoff (gRPC's own retry policy); nothing else is.
Unary calls get a default deadline; streams have none unless the caller sets one.

Unary calls without side effects also *wait for ready*: while the service is down or restarting
they wait (up to their deadline) for the channel to reconnect instead of failing at once, so a
read rides over a restart; the channel retries connecting at least every 5 s. The price: a read
against a service that stays down fails only at its deadline (DeadlineExceededError), not at
once. Calls with side effects fail fast with UNAVAILABLE: the caller decides whether to send them
again (with the same idempotency key where the RPC has one).
"""

from __future__ import annotations

import json
from functools import cache

import grpc
from google.protobuf import descriptor_pb2

from beamops.data.v1 import data_service_pb2
from beamops.inference.v1 import inference_service_pb2
from beamops.registry.v1 import registry_service_pb2
from beamops.training.v1 import training_service_pb2

SERVICE_DESCRIPTORS = {
    "registry": registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    "data": data_service_pb2.DESCRIPTOR.services_by_name["DataService"],
    "training": training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
    "inference": inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
}
DEFAULT_TIMEOUT_S = 30.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_RECONNECT_BACKOFF_MS = 5000  # gRPC's default grows to 120 s


@cache
def service_config(service: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    descriptor = SERVICE_DESCRIPTORS[service]
    safe_unary, safe_streams, unary = [], [], []
    for method in descriptor.methods:
        name = {"service": descriptor.full_name, "method": method.name}
        level = method.GetOptions().idempotency_level
        streaming = method.client_streaming or method.server_streaming
        if level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS and not method.client_streaming:
            (safe_streams if streaming else safe_unary).append(name)
        elif not streaming:
            unary.append(name)
    retry = {
        "maxAttempts": 5,
        "initialBackoff": "0.1s",
        "maxBackoff": "3s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    configs = []
    if safe_unary:
        configs.append({"name": safe_unary, "retryPolicy": retry, "waitForReady": True,
                        "timeout": f"{timeout_s}s"})
    if safe_streams:
        configs.append({"name": safe_streams, "retryPolicy": retry})
    if unary:
        configs.append({"name": unary, "timeout": f"{timeout_s}s"})
    return json.dumps({"methodConfig": configs})


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        return details._replace(metadata=[*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


def channel_credentials(ca_file: str | None, cert_file: str | None = None,
                        key_file: str | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials trusting ``ca_file`` (and presenting a client certificate for mutual TLS)."""
    if ca_file is None:
        if cert_file or key_file:
            raise ValueError("a client certificate needs BEAMOPS_CA_FILE too (mutual TLS is TLS)")
        return None
    read = lambda path: open(path, "rb").read() if path else None  # noqa: E731
    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))


def open_channel(service: str, address: str, token: str | None,
                 credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A blocking channel to one service, with token, deadlines, retries, and TLS if given."""
    options = [
        ("grpc.service_config", service_config(service)),
        ("grpc.enable_retries", 1),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials
               else grpc.insecure_channel(address, options=options))
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel
