"""Page sizes and opaque page tokens (base64 of a small JSON object holding the last key)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from beamops.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 (or less) means the default of 100; anything above 1000 is clamped to 1000."""
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_token(token: str, *fields: str) -> dict[str, Any] | None:
    """The key in ``token`` (None for an empty token); INVALID_ARGUMENT if it is not ours."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        key = None
    if not isinstance(key, dict) or any(f not in key for f in fields):
        raise InvalidArgument(
            "invalid page_token: pass the next_page_token of the previous response unchanged",
            field="page_token",
        )
    return key
