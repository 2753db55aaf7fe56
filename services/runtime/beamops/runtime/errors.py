"""Domain errors. Services raise these; one interceptor turns them into gRPC status codes.

This module knows nothing about gRPC, so domain logic can raise errors without importing it.
The message is shown to the caller as it is: write it for a physicist (what was wrong, what to
do), and never put a server path, an internal address or a traceback in it.
"""

from __future__ import annotations


class BeamopsError(Exception):
    """Base of all errors meant for the caller.

    ``metadata`` names the resources involved (e.g. ``{"model": "jet-tagger"}``); it travels in
    the status details as ``google.rpc.ErrorInfo.metadata``.
    """

    reason = "INTERNAL"

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {key: str(value) for key, value in metadata.items()}


class NotFound(BeamopsError):
    reason = "NOT_FOUND"


class AlreadyExists(BeamopsError):
    reason = "ALREADY_EXISTS"


class InvalidArgument(BeamopsError):
    """Bad input. ``field`` names the request field at fault, when there is one."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, field: str | None = None, **metadata: str) -> None:
        super().__init__(message, **metadata)
        self.field = field


class FailedPrecondition(BeamopsError):
    """The request is well formed but the system is not in a state that allows it."""

    reason = "FAILED_PRECONDITION"


class PermissionDenied(BeamopsError):
    reason = "PERMISSION_DENIED"


class Unauthenticated(BeamopsError):
    reason = "UNAUTHENTICATED"


class ResourceExhausted(BeamopsError):
    reason = "RESOURCE_EXHAUSTED"


class DataLoss(BeamopsError):
    """Stored or transferred bytes are not what they should be (checksum mismatch, corrupt file)."""

    reason = "DATA_LOSS"


class Unavailable(BeamopsError):
    """A dependency is down; the caller may retry."""

    reason = "UNAVAILABLE"
