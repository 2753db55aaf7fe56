"""The one rule for names of every resource kind, checked before anything else.

Models, model types, aliases, IOV tags, global tags, tag keys, datasets and deployments (and
the dataset and model names a training spec refers to) all follow it:

- 1 to 100 characters: ASCII letters, digits, '.', '_' and '-';
- starting with a letter or a digit, and without "..";
- case-sensitive and kept exactly as typed: ``PHYSLITE`` and ``physlite`` are two different
  names, nothing is lower-cased or otherwise normalised, and a lookup must match exactly.

Anything outside the allowlist (slashes, NUL, spaces, control characters, look-alike Unicode) is
refused with INVALID_ARGUMENT, a message naming the kind and saying what is allowed, and the
request field at fault. Names reach URLs, logs, shell commands, Triton model names and folders of
the Triton model repository; the inference service makes the Triton names of two deployments
whose names differ only in case different even when compared ignoring case
(``beamops.inference.triton.repository.triton_name``), so case-insensitive filesystems cannot
mix them up.
Every message quotes the name with :func:`ascii` (no control or bidi characters), cut at 40.
"""

from __future__ import annotations

import re

from .errors import InvalidArgument

MAX_NAME = 100
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ALLOWED = ("1 to 100 characters: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, "
           "without '..' (case-sensitive)")


def is_name(value: str) -> bool:
    """Whether ``value`` follows the name rule (no exception)."""
    # fullmatch, not match: "$" would accept a trailing newline
    return bool(value) and NAME_PATTERN.fullmatch(value) is not None and ".." not in value


def check_name(value: str, kind: str = "name", field: str | None = None) -> str:
    """Return ``value`` unchanged if it is an allowed name, else raise InvalidArgument.

    ``kind`` says what the name is for in the message ("dataset name", "deployment name"...);
    ``field`` is the request field at fault (``kind`` when not given).
    """
    field = field or kind
    if not value:
        raise InvalidArgument(f"the {kind} is empty; it must be {ALLOWED}", field=field)
    if is_name(value):
        return value
    if ".." in value:
        problem = 'it contains ".."'
    elif len(value) > MAX_NAME:
        problem = f"it is {len(value)} characters long"
    else:
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))), None)
        problem = (f"it contains the character {bad!a} (U+{ord(bad):04X})" if bad is not None
                   else "it must start with a letter or a digit")
    raise InvalidArgument(f"invalid {kind} {shown(value)}: {problem}; a {kind} must be {ALLOWED}",
                          field=field)


def shown(value: str) -> str:
    """A name as quoted in messages: ASCII only; cut at 40 characters, "..." after the quotes (what
    is quoted is exactly what the caller sent)."""
    value = value or ""
    return ascii(value) if len(value) <= 40 else ascii(value[:40]) + "..."
