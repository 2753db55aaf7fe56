"""Pagination for every list RPC: one page-size rule and opaque, tamper-evident page tokens.

No gRPC here. The protos promise (protos/README.md): ``page_size`` 0 means 100, values above
1000 are clamped to 1000; ``next_page_token`` is empty on the last page; page tokens are opaque.
Here a negative ``page_size`` is INVALID_ARGUMENT (field ``page_size``).

A listing is a :class:`Listing` with a name unique in the process (``"registry.models"``).
Its token carries where the next page starts (the *position*: an offset, or the last key seen
for keyset pagination, any JSON value) together with the listing's name and a digest of what
the listing was filtered by (the *query*), so a token replayed against another listing or
other filters is refused instead of giving a wrong page. Page sizes are not part of the query:
a caller may change ``page_size`` from one page to the next.

Token format (an implementation detail; clients must treat tokens as opaque strings)::

    base64url_nopad( payload || HMAC-SHA256(key, "beamops.page-token" 0x00 payload)[:16] )
    payload = compact JSON {"l": listing name, "q": query digest (16 hex), "p": position}

Key: 32 random bytes drawn when the process starts. The services have no stable secret of
their own to derive one from, and a page token is a cursor, not a credential (every call is
authorised on its own), so the key only has to make tokens unforgeable and alterations evident.
The price: a token is valid for the life of the server process that issued it; after a restart
a stale token is refused with INVALID_ARGUMENT ("page_token is not valid (expired or altered):
start again without it"), and the caller lists again from the first page.

Every bad token (garbage, truncated, altered, expired, or issued for another listing or other
filters) is :class:`~beamops.runtime.errors.InvalidArgument` with field ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import hmac
import json
import re
import secrets
from datetime import date, datetime
from typing import Any, Sequence, TypeVar

from .errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_TOKEN_CHARS = 8192  # ours are ~100-300 characters (~3300 for a 200-character non-ASCII key)

T = TypeVar("T")

_TAG_BYTES = 16
_DOMAIN = b"beamops.page-token\x00"
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")

NOT_VALID = "page_token is not valid (expired or altered): start again without it"


def page_size(requested: int, field: str = "page_size") -> int:
    """The page size to use: 0 means the default (100), above 1000 is 1000; negative is refused."""
    if requested < 0:
        raise InvalidArgument(f"{field} must not be negative (got {requested}); 0 means the default "
                              f"of {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}", field=field)
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


class PageTokens:
    """Signs and checks page tokens with one key (default: a random one, for this process)."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) < 16:
            raise ValueError("a page-token key needs at least 16 bytes")
        self._key = key if key is not None else secrets.token_bytes(32)

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, listing: str, query: object, position: Any) -> str:
        if position is None:
            raise ValueError("a page token needs a position (None is the first page: no token)")
        payload = json.dumps({"l": listing, "q": query_digest(query), "p": position},
                             separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()
        return base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode()

    def decode(self, listing: str, query: object, token: str) -> Any | None:
        """The position in ``token``; None for an empty token (the first page)."""
        if not token:
            return None
        payload = self._verified_payload(token)
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeError):
            body = None
        if not isinstance(body, dict) or not {"l", "q", "p"} <= body.keys() or body["p"] is None:
            raise InvalidArgument(NOT_VALID, field="page_token")  # signed by us, yet not ours
        if body["l"] != listing:
            raise InvalidArgument("page_token was issued for another listing: pass the "
                                  "next_page_token of this list's previous page, or start again "
                                  "without it", field="page_token")
        if body["q"] != query_digest(query):
            raise InvalidArgument("page_token was issued for other filters: repeat the filters of the "
                                  "first page unchanged, or start again without it", field="page_token")
        return body["p"]

    def _verified_payload(self, token: str) -> bytes:
        if len(token) > MAX_TOKEN_CHARS or not _BASE64URL.fullmatch(token):
            raise InvalidArgument(NOT_VALID, field="page_token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidArgument(NOT_VALID, field="page_token") from None
        # One spelling per token: base64's unused trailing bits must not let an altered token pass.
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if (canonical != token or len(raw) <= _TAG_BYTES
                or not hmac.compare_digest(tag, self._tag(payload))):
            raise InvalidArgument(NOT_VALID, field="page_token")
        return payload


_process_tokens = PageTokens()


class Listing:
    """One list RPC's pagination: its name, and the tokens (default: this process's key)."""

    def __init__(self, name: str, tokens: PageTokens | None = None) -> None:
        self.name = name
        self._tokens = tokens

    @property
    def tokens(self) -> PageTokens:
        return self._tokens or _process_tokens

    def position(self, token: str, query: object = None) -> Any | None:
        """Where the page of ``token`` starts (None: the first page); INVALID_ARGUMENT if bad."""
        return self.tokens.decode(self.name, query, token)

    def token(self, position: Any, query: object = None) -> str:
        """The token of the page starting at ``position`` (a JSON value), for this query."""
        return self.tokens.encode(self.name, query, position)

    def offset(self, token: str, query: object = None) -> int:
        """The offset of an offset-paginated listing (0 for the first page)."""
        start = self.position(token, query)
        if start is None:
            return 0
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise InvalidArgument(NOT_VALID, field="page_token")
        return start

    def slice(self, items: Sequence[T], size: int, token: str, query: object = None) -> tuple[list[T], str]:
        """One page of an in-memory list, by offset: the items and the next page's token.

        ``size`` is the requested page size (the page-size rule applies).
        """
        size = page_size(size)
        start = self.offset(token, query)
        end = start + size
        return list(items[start:end]), (self.token(end, query) if end < len(items) else "")


def query_digest(query: object) -> str:
    """A short, stable digest of a listing's filters (dataclasses, dicts, lists, scalars, times)."""
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"a page-token query cannot hold a {type(value).__name__}")


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "NOT_VALID", "Listing", "PageTokens", "page_size",
           "query_digest"]
