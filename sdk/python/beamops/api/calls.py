"""Run a gRPC call and turn its failure into a :mod:`beamops.errors` exception."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import grpc

from beamops.errors import from_rpc_error

T = TypeVar("T")


def call(method: Callable[..., T], request, **kwargs) -> T:
    try:
        return method(request, **kwargs)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


def stream(method: Callable[..., Iterator[T]], request, **kwargs) -> Iterator[T]:
    try:
        yield from method(request, **kwargs)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


def pages(method: Callable, request, field: str, limit: int | None = None) -> Iterator:
    """Every item of a paginated list, page after page (``limit`` stops early)."""
    seen = 0
    while True:
        reply = call(method, request)
        for item in getattr(reply, field):
            yield item
            seen += 1
            if limit is not None and seen >= limit:
                return
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


@contextmanager
def rpc_errors() -> Iterator[None]:
    """Inside this block, failed calls raise :mod:`beamops.errors` exceptions."""
    try:
        yield
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
