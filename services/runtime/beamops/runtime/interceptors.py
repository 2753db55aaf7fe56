"""Server interceptors: metrics (outermost), error mapping, authentication (innermost).

Each wraps the behaviour of every RPC handler, for all four call shapes, through
:class:`BehaviorInterceptor`: unary responses go through :meth:`call_unary`, streamed responses
through :meth:`call_stream`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import itertools
import logging
import os
import re
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram

from . import errors
from .auth import (
    ANONYMOUS_ADMIN, ROLE_NAMES, Authenticator, JwtVerifier, Principal, Role, TokenStore,
    set_current_principal,
)
from .logs import request_id_var

log = logging.getLogger(__name__)

ERROR_DOMAIN = "beamops.dev"
REQUEST_ID_KEY = "x-request-id"
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

STATUS_CODES: dict[str, grpc.StatusCode] = {
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "DATA_LOSS": grpc.StatusCode.DATA_LOSS,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}


class BehaviorInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps each handler's behaviour; subclasses override call_unary / call_stream.

    The wrapped handler of each method is built once and reused (keyed by the inner handler).
    """

    def __init__(self) -> None:
        self._wrapped: dict[tuple[str, int], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        return self.wrap(handler_call_details.method, await continuation(handler_call_details))

    def wrap(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        if handler is None:
            return None
        key = (method, id(handler))  # a method may have two handlers: its own and a refusal
        cached = self._wrapped.get(key)
        if cached is None or cached[0] is not handler:
            cached = (handler, _wrap_handler(handler, method, self))
            self._wrapped[key] = cached
        return cached[1]

    async def call_unary(self, method: str, context, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()

    def call_stream(
        self, method: str, context, stream: Callable[[], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        return stream()


class MetricsInterceptor(BehaviorInterceptor):
    """Counts calls and measures latency per RPC and status code, into a Prometheus registry."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        super().__init__()
        self._service = service
        self._calls = Counter(
            "beamops_rpc_calls", "RPCs handled", ["service", "method", "code"], registry=registry
        )
        self._latency = Histogram(
            "beamops_rpc_latency_seconds", "RPC handling time", ["service", "method"],
            registry=registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                     0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._children: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}

    async def call_unary(self, method, context, call):
        start = time.perf_counter()
        try:
            result = await call()
        except BaseException as exc:
            self._record(method, start, _code_of(exc, context))
            raise
        self._record(method, start, grpc.StatusCode.OK)
        return result

    async def call_stream(self, method, context, stream):
        start = time.perf_counter()
        try:
            async for item in stream():
                yield item
        except BaseException as exc:
            self._record(method, start, _code_of(exc, context))
            raise
        self._record(method, start, grpc.StatusCode.OK)

    def _record(self, method: str, start: float, code: grpc.StatusCode) -> None:
        # Label children are looked up once per (method, code), not on every call.
        children = self._children.get((method, code))
        if children is None:
            name = method.rsplit("/", 1)[-1]
            children = (self._latency.labels(self._service, name),
                        self._calls.labels(self._service, name, code.name))
            self._children[(method, code)] = children
        children[0].observe(time.perf_counter() - start)
        children[1].inc()


class ErrorInterceptor(BehaviorInterceptor):
    """Turns exceptions into status codes, and gives every call a request id for the log.

    Domain errors (:mod:`beamops.runtime.errors`) become their status code with the message as
    written; anything else becomes INTERNAL with only the request id in the message, while the
    traceback goes to the log under that id. The id comes from the caller's ``x-request-id``
    metadata when it is sane, and is always sent back in the trailing metadata.
    """

    async def call_unary(self, method, context, call):
        token = request_id_var.set(_request_id(context))
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id_var.get()),))
            return await call()
        except Exception as exc:
            await self._abort(method, context, exc)
        except asyncio.CancelledError:
            if _cancelling():
                raise
            await self._abort_stray_cancellation(method, context)
        finally:
            request_id_var.reset(token)

    async def call_stream(self, method, context, stream):
        token = request_id_var.set(_request_id(context))
        try:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id_var.get()),))
            async for item in stream():
                yield item
        except Exception as exc:
            await self._abort(method, context, exc)
        except asyncio.CancelledError:
            if _cancelling():
                raise
            await self._abort_stray_cancellation(method, context)
        finally:
            request_id_var.reset(token)

    async def _abort_stray_cancellation(self, method: str, context) -> None:
        """A ``CancelledError`` that does not cancel this call (a client channel of the service
        closed under one of its calls) would end the call with no status, and its caller would
        wait until its deadline: it becomes UNAVAILABLE instead. The call's own cancellation (the
        caller went away, the server stops) goes on as it is."""
        log.warning("%s: a call this service depends on was cancelled under it (request %s)",
                    method, request_id_var.get())
        await context.abort_with_status(status_for(
            errors.Unavailable("the service lost a connection it needed for this call; "
                               "retry shortly"), method, request_id_var.get()))

    async def _abort(self, method: str, context, exc: Exception) -> None:
        if isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError)):
            raise exc
        await context.abort_with_status(status_for(exc, method, request_id_var.get()))


#: How often an open stream's caller is checked again without a change of the tokens (a token
#: that expires: a JWT's exp).
STREAM_RECHECK_S = 5.0
#: How often the tokens (and the client certificate mapping) are looked at for a change.
TOKEN_POLL_S = 0.2


class _TokenChanges:
    """One watcher per server for every open stream: ``next()`` returns when the authenticator's
    answers may have changed (its revision moved), or after STREAM_RECHECK_S at the latest."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._waiting = 0  # streams waiting now; the watcher ends when none is left

    async def next(self) -> None:
        if self._task is None or self._task.done():
            self._changed = asyncio.Event()
            self._task = asyncio.create_task(self._poll())
        self._waiting += 1
        try:
            await self._changed.wait()
        finally:
            self._waiting -= 1

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        seen, recheck_at = self._authenticator.revision(), loop.time() + STREAM_RECHECK_S
        while True:
            await asyncio.sleep(TOKEN_POLL_S)
            if not self._waiting:
                return
            now = self._authenticator.revision()
            if now != seen or loop.time() >= recheck_at:
                seen, recheck_at = now, loop.time() + STREAM_RECHECK_S
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()


class AuthInterceptor(BehaviorInterceptor):
    """Checks the bearer token and the role each RPC declares; fails closed.

    The check reads the call's metadata only, before the request message: a refused call is
    answered by a handler that never reads its request, so a caller without a valid token
    cannot make the server receive, hold or parse a message.

    The checks themselves are an :class:`~beamops.runtime.auth.Authenticator` (pass one, or
    the tokens store and optional JWT verifier it is built from). ``jwt`` also accepts OpenID
    Connect JWTs (three dot-separated parts). ``tokens=None`` disables authentication (every
    caller is an anonymous admin): only for development, never the default.
    """

    def __init__(self, tokens: Authenticator | TokenStore | None, policy: dict[str, Role],
                 jwt: JwtVerifier | None = None) -> None:
        super().__init__()
        self._authenticator = (tokens if isinstance(tokens, Authenticator)
                               else Authenticator(tokens, jwt))
        self._policy = policy
        self._rules: dict[str, tuple[bool, str, Role | None]] = {}
        self._changes = _TokenChanges(self._authenticator)
        self._refusals: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        try:
            self._admit(method, _authorization(handler_call_details.invocation_metadata))
        except errors.BeamopsError as exc:
            _refusal.set(exc)
            return self.wrap(method, self._refusal_for(method, handler))
        return self.wrap(method, handler)

    def _refusal_for(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """A handler that raises the call's refusal; it takes a request stream, which it never
        reads, whatever the method's shape (the wire does not tell them apart)."""
        refusal = self._refusals.get(method)
        if refusal is None:
            async def refuse(requests, context):
                raise _refusal.get()

            refusal = self._refusals[method] = grpc.stream_unary_rpc_method_handler(
                refuse, response_serializer=handler.response_serializer)
        return refusal

    async def call_stream(self, method, context, stream):
        """A stream whose caller is refused again while it runs (a token revoked or expired)
        ends at once with that refusal: the caller is checked again whenever the tokens change
        and every :data:`STREAM_RECHECK_S`."""
        if not self._authenticator.enabled or self._rule(method)[0]:
            async for item in stream():
                yield item
            return
        task, refused = asyncio.current_task(), []

        async def guard() -> None:
            while True:
                await self._changes.next()
                try:
                    self._authenticate(metadata_value(context, "authorization"))
                except (errors.Unauthenticated, errors.PermissionDenied) as exc:
                    refused.append(exc)
                    task.cancel()
                    return

        guarding = asyncio.create_task(guard())
        try:
            async for item in stream():
                yield item
        except asyncio.CancelledError:
            if not refused:
                raise
            task.uncancel()
            raise refused[0] from None
        finally:
            guarding.cancel()

    def _rule(self, method: str) -> tuple[bool, str, Role | None]:
        rule = self._rules.get(method)
        if rule is None:
            public = method.startswith(PUBLIC_PREFIXES)
            rule = self._rules[method] = (public, method.rsplit("/", 1)[-1],
                                          self._policy.get(method))
        return rule

    def _admit(self, method: str, authorization: str) -> None:
        """Admits the caller of ``method`` (its principal becomes the call's) or raises."""
        public, name, required = self._rule(method)
        if public:
            return
        if required is None:
            raise errors.PermissionDenied(f"{name} declares no access policy, so nobody may call it")
        principal = self._authenticate(authorization)
        service = method.split("/")[1] if method.count("/") == 2 else ""
        if not principal.may_call(service):
            raise errors.PermissionDenied(
                f"{name}: the token of {principal.name!r} is an internal credential that may call "
                f"only {', '.join(sorted(s.rsplit('.', 1)[-1] for s in principal.confined_to))}"
            )
        if not principal.may(required):
            raise errors.PermissionDenied(
                f"{name} needs the {ROLE_NAMES[required]} role; the token of "
                f"{principal.name!r} has the {ROLE_NAMES[principal.role]} role"
            )
        set_current_principal(principal)

    def _authenticate(self, authorization: str) -> Principal:
        if not self._authenticator.enabled:
            return ANONYMOUS_ADMIN
        return self._authenticator.authenticate(authorization)


#: The refusal of the call being answered by a refusal handler (set where the call was checked).
_refusal: contextvars.ContextVar[Exception] = contextvars.ContextVar("beamops_refusal")


def _authorization(metadata) -> str:
    """The last ``authorization`` value of invocation metadata (like ``dict()``)."""
    value = ""
    for k, v in metadata or ():
        if k == "authorization":
            value = v
    return value


class _RichStatus(
    collections.namedtuple("_RichStatus", ("code", "details", "trailing_metadata")), grpc.Status
):
    pass


class Relayed(Exception):
    """The status of a call this service passed on to another server: its caller gets it as it
    came (code, message and google.rpc details)."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details())
        self.error = error


def status_for(exc: BaseException, method: str, request_id: str) -> grpc.Status:
    """The status a caller sees for ``exc``: code, message, and google.rpc details."""
    name = method.rsplit("/", 1)[-1]
    if isinstance(exc, Relayed):
        details = tuple((k, v) for k, v in (exc.error.trailing_metadata() or ())
                        if k == "grpc-status-details-bin")
        return _RichStatus(exc.error.code(), exc.error.details(),
                           details + ((REQUEST_ID_KEY, request_id),))
    if isinstance(exc, errors.BeamopsError):
        code, message, reason, metadata = (
            STATUS_CODES[exc.reason], exc.message, exc.reason, exc.metadata,
        )
    elif isinstance(exc, NotImplementedError):
        code, message, reason, metadata = (
            grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented yet", "UNIMPLEMENTED", {},
        )
    else:
        log.exception("unexpected error in %s", method, extra={"request_id": request_id})
        code, reason, metadata = grpc.StatusCode.INTERNAL, "INTERNAL", {}
        message = (
            f"internal error in {name}; an administrator can find it in the log "
            f"under request id {request_id}"
        )
    details = [
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata),
        error_details_pb2.RequestInfo(request_id=request_id),
    ]
    if isinstance(exc, errors.InvalidArgument) and exc.field:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=message)
                ]
            )
        )
    status = status_pb2.Status(code=code.value[0], message=message, details=[_pack(d) for d in details])
    return _RichStatus(
        code,
        message,
        (("grpc-status-details-bin", status.SerializeToString()), (REQUEST_ID_KEY, request_id)),
    )


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Generated request ids: 32 hex digits, a random prefix per process and a counter (unique like
# a uuid4, without a random draw per call).
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big") << 24)
# The current call's invocation metadata, read once and shared by the interceptors.
_call_metadata: contextvars.ContextVar[tuple[Any, Any]] = contextvars.ContextVar(
    "beamops_call_metadata", default=(None, ()))


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def metadata_value(context, key: str, default: str = "") -> str:
    """The value of ``key`` in the call's invocation metadata (the last one, like ``dict()``);
    the metadata is read from the context once per call."""
    owner, metadata = _call_metadata.get()
    if owner is not context:
        metadata = context.invocation_metadata() or ()
        _call_metadata.set((context, metadata))
    value = default
    for k, v in metadata:
        if k == key:
            value = v
    return value


def _request_id(context) -> str:
    given = metadata_value(context, REQUEST_ID_KEY)
    return given if given and _REQUEST_ID.fullmatch(given) else _new_request_id()


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (not just hit by a stray
    ``CancelledError`` from a call it awaited)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _code_of(exc: BaseException, context) -> grpc.StatusCode:
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    try:
        code = context.code()
    except Exception:  # pragma: no cover - older grpc without ServicerContext.code()
        code = None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode.UNKNOWN


async def _invoke(behavior, argument, context):
    result = behavior(argument, context)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _iterate(behavior, argument, context):
    result = behavior(argument, context)
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):  # a coroutine that writes with context.write()
        await result
    elif result is not None:
        for item in result:
            yield item


def _wrap_handler(handler: grpc.RpcMethodHandler, method: str, icpt: BehaviorInterceptor):
    codec = dict(
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    if handler.unary_unary:
        behavior = handler.unary_unary
        direct = inspect.iscoroutinefunction(behavior)

        async def unary_unary(request, context):
            if direct:  # no extra coroutine in between
                return await icpt.call_unary(method, context, functools.partial(behavior, request, context))
            return await icpt.call_unary(method, context, lambda: _invoke(behavior, request, context))

        return grpc.unary_unary_rpc_method_handler(unary_unary, **codec)
    if handler.stream_unary:
        behavior = handler.stream_unary
        direct = inspect.iscoroutinefunction(behavior)

        async def stream_unary(requests, context):
            if direct:
                return await icpt.call_unary(method, context, functools.partial(behavior, requests, context))
            return await icpt.call_unary(method, context, lambda: _invoke(behavior, requests, context))

        return grpc.stream_unary_rpc_method_handler(stream_unary, **codec)
    if handler.unary_stream:
        behavior = handler.unary_stream

        async def unary_stream(request, context):
            async for item in icpt.call_stream(method, context, lambda: _iterate(behavior, request, context)):
                yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, **codec)
    behavior = handler.stream_stream

    async def stream_stream(requests, context):
        async for item in icpt.call_stream(method, context, lambda: _iterate(behavior, requests, context)):
            yield item

    return grpc.stream_stream_rpc_method_handler(stream_stream, **codec)
