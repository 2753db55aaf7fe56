"""Python exceptions for failed beamops calls: one class per family of gRPC status codes.

>>> try:
...     client.registry.get_model("no-such-model")
... except beamops.NotFoundError as error:
...     print(error)          # "no model named 'no-such-model'"
...     print(error.request_id)  # quote it to an administrator
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class BeamopsError(Exception):
    """A beamops call failed. ``code`` is the gRPC status, ``request_id`` finds it in the logs."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None, request_id: str = "",
                 reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.reason = reason
        self.metadata = metadata or {}


class NotFoundError(BeamopsError):
    """The model, version, dataset, job or deployment does not exist."""


class AlreadyExistsError(BeamopsError):
    """Something of that name exists already."""


class InvalidArgumentError(BeamopsError):
    """The request is wrong (bad name, shape, cut, ...); ``field`` says which part, when known."""

    field: str = ""


class ConflictError(BeamopsError):
    """The request is fine but the current state forbids it (FAILED_PRECONDITION, ABORTED)."""


class PermissionDeniedError(BeamopsError):
    """The token is valid but its role does not allow this call."""


class AuthenticationError(BeamopsError):
    """No token, or an unknown or revoked one."""


class ResourceExhaustedError(BeamopsError):
    """Too large, or too many: a size or rate limit."""


class DataLossError(BeamopsError):
    """Bytes are not what they should be (checksum mismatch, corrupt file)."""


class UnavailableError(BeamopsError):
    """The service (or one it depends on) is down or unreachable; retrying later may work."""


class DeadlineExceededError(BeamopsError):
    """The call took longer than its deadline."""


class InternalError(BeamopsError):
    """A bug on the server side; quote ``request_id`` when reporting it."""


_CLASSES = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: ConflictError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DATA_LOSS: DataLossError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(error: grpc.RpcError) -> BeamopsError:
    """The exception matching a failed call, with the server's message and details."""
    code = error.code() if hasattr(error, "code") else None
    message = (error.details() if hasattr(error, "details") else None) or str(code)
    cls = _CLASSES.get(code, InternalError)
    request_id, reason, metadata, field = "", "", {}, ""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        status = None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            info = error_details_pb2.RequestInfo()
            detail.Unpack(info)
            request_id = info.request_id
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field if bad.field_violations else ""
    exc = cls(message, code=code, request_id=request_id, reason=reason, metadata=metadata)
    if field:
        exc.field = field
    return exc
