"""Helpers of the property-based tests: hypothesis strategies built from the proto descriptors,
and a background event loop that runs real servers and their grpc.aio channels while
hypothesis (synchronous) drives the examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, AsyncContextManager, Sequence

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import strategies as st

from .assertions import assert_clean_error

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
T = FieldDescriptor

_INT_RANGES = {
    T.TYPE_INT32: (-(2**31), 2**31 - 1), T.TYPE_SINT32: (-(2**31), 2**31 - 1), T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    T.TYPE_INT64: (-(2**63), 2**63 - 1), T.TYPE_SINT64: (-(2**63), 2**63 - 1), T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    T.TYPE_UINT32: (0, 2**32 - 1), T.TYPE_FIXED32: (0, 2**32 - 1),
    T.TYPE_UINT64: (0, 2**64 - 1), T.TYPE_FIXED64: (0, 2**64 - 1),
}
# Text with what breaks naive code: control characters, bidi overrides, zero-width, NUL, paths.
_ODD = st.sampled_from(["", "..", "../", "/", "\x00", "\n", "\u202e", "\u200b", "%2e%2e%2f", "*", "?", ";",
                        "$(id)", "'", '"', "\\", "ß", "\U0001f600", "a" * 300, " ", "-1", "0", "1.0", "NaN"])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def _repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6 deprecates .label
    return bool(flag() if callable(flag) else flag) if flag is not None else field.label == T.LABEL_REPEATED


def strings(tokens: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Random Unicode, odd strings, and ``tokens`` (names that exist, so deeper code runs)."""
    options = [_TEXT, _ODD, st.builds(lambda a, b: a + b, _ODD, _TEXT)]
    if tokens:
        options.append(st.sampled_from(list(tokens)))
    return st.one_of(*options)


def numbers(kind: int) -> st.SearchStrategy:
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2, 2**31 - 1]))
    return st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == T.TYPE_FLOAT else 64)


def value_of(field: FieldDescriptor, tokens, depth: int, overrides) -> st.SearchStrategy:
    if field.message_type is not None and field.message_type.full_name in overrides:
        return overrides[field.message_type.full_name]
    if field.type == T.TYPE_STRING:
        return strings(tokens)
    if field.type == T.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == T.TYPE_BOOL:
        return st.booleans()
    if field.type == T.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 2**31 - 1))  # open enums: unknown values too
    if field.type in (T.TYPE_MESSAGE, T.TYPE_GROUP):
        return messages(field.message_type, tokens, depth + 1, overrides)
    return numbers(field.type)


def messages(descriptor: Descriptor, tokens: Sequence[str] = (), depth: int = 0,
             overrides: dict[str, st.SearchStrategy] | None = None) -> st.SearchStrategy:
    """Messages of ``descriptor`` with random subsets of fields set (repeated: up to 4 values,
    maps: up to 3 entries, nested messages up to depth 3, oneofs: any one member)."""
    overrides = overrides or {}
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    full = descriptor.full_name
    if full == "google.protobuf.Timestamp":
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), st.integers(-(2**40), 2**40),
                         st.integers(-(2**31), 2**31 - 1))
    if full == "google.protobuf.Duration":
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), st.integers(-(2**40), 2**40), st.integers(-10**9, 10**9))
    if full in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        return _structs(cls, full, tokens)

    fields = [f for f in descriptor.fields]

    @st.composite
    def build(draw):
        msg = cls()
        for field in fields:
            if not draw(st.booleans()):
                continue
            try:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    key_f, val_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
                    entries = draw(st.dictionaries(value_of(key_f, tokens, depth, overrides),
                                                   value_of(val_f, tokens, depth, overrides), max_size=3))
                    target = getattr(msg, field.name)
                    for k, v in entries.items():
                        if val_f.message_type is not None:
                            target[k].CopyFrom(v)
                        else:
                            target[k] = v
                elif _repeated(field):
                    values = draw(st.lists(value_of(field, tokens, depth, overrides), max_size=4))
                    if field.message_type is not None:
                        getattr(msg, field.name).extend(values)
                    else:
                        getattr(msg, field.name).extend(values)
                elif field.message_type is not None:
                    getattr(msg, field.name).CopyFrom(draw(value_of(field, tokens, depth, overrides)))
                else:
                    setattr(msg, field.name, draw(value_of(field, tokens, depth, overrides)))
            except (ValueError, TypeError):
                continue  # a value protobuf itself refuses (e.g. a huge key type) is not a request
        return msg

    return build()


def _structs(cls, full: str, tokens) -> st.SearchStrategy:
    from google.protobuf import struct_pb2

    scalars = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                        strings(tokens))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(strings(tokens), inner, max_size=3)),
                          max_leaves=6)

    def to_struct(d):
        s = struct_pb2.Struct()
        try:
            s.update(d)
        except (ValueError, TypeError):
            pass
        return s

    if full == "google.protobuf.Struct":
        return st.dictionaries(strings(tokens), values, max_size=4).map(to_struct)
    if full == "google.protobuf.ListValue":
        return st.lists(values, max_size=3).map(lambda xs: to_struct({"l": xs})["l"])
    return values.map(lambda v: to_struct({"v": v}).fields["v"])


def strings_in(message) -> list[str]:
    """Every string (and map key) in a message, recursively: what an error may quote back."""
    out: list[str] = []
    for field, value in message.ListFields():
        items = value.items() if hasattr(value, "items") else (value if _repeated(field) else [value])
        for item in items:
            for part in (item if isinstance(item, tuple) else (item,)):
                if isinstance(part, str):
                    out.append(part)
                elif hasattr(part, "ListFields"):
                    out += strings_in(part)
    return out


def check_status(err: grpc.RpcError, echo: Sequence[str]) -> None:
    """Merely invalid input: never INTERNAL or UNKNOWN; the message is clean."""
    assert err.code() not in FORBIDDEN, (err.code(), err.details())
    if err.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return
    assert_clean_error(err, err.code(), echo=echo)


# ------------------------------------------------------------------------------ background loop

class BackgroundLoop:
    """An event loop in a thread: start async context managers (servers) in it, run coroutines
    on it from synchronous code (hypothesis examples)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stack = contextlib.AsyncExitStack()

    def run(self, work, timeout: float = 120) -> Any:
        """Run a coroutine, or a function returning an awaitable (e.g. ``lambda: stub.Get(...)``:
        a grpc.aio call must be created on the loop that owns its channel), on the loop."""
        if callable(work):
            make = work

            async def go():
                return await make()

            work = go()
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def enter(self, manager: AsyncContextManager) -> Any:
        return self.run(self._stack.enter_async_context(manager))

    def close(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


async def call_method(channel: grpc.aio.Channel, method: MethodDescriptor, requests: list, metadata,
                      timeout: float = 30) -> grpc.StatusCode | grpc.aio.AioRpcError:
    """Call any method with ``requests`` (one for unary requests); return OK or the error."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    kw = dict(request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString)
    try:
        if method.client_streaming and method.server_streaming:
            async for _ in channel.stream_stream(path, **kw)(iter(requests), metadata=metadata, timeout=timeout):
                pass
        elif method.client_streaming:
            await channel.stream_unary(path, **kw)(iter(requests), metadata=metadata, timeout=timeout)
        elif method.server_streaming:
            async for _ in channel.unary_stream(path, **kw)(requests[0], metadata=metadata, timeout=timeout):
                pass
        else:
            await channel.unary_unary(path, **kw)(requests[0], metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        return err
    return grpc.StatusCode.OK
