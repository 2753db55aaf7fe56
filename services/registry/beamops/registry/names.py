"""Names of models, aliases, IOV tags and global tags: an allowlist, checked before anything else.

A name is 1 to 100 characters: ASCII letters, digits, '.', '_' and '-', starting with a letter or
a digit, and without "..". Names are never used as file paths, but they appear in URLs, logs and
shell commands, so anything outside the allowlist (slashes, NUL, spaces, look-alike Unicode) is
refused with a message that says what is allowed.
"""

from __future__ import annotations

import re

from beamops.runtime.errors import InvalidArgument

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ALLOWED = "1 to 100 characters: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}(\.[a-z][a-z0-9_-]{0,31}){1,3}$")
MAX_TEXT = 10_000
MAX_FILENAME = 255


def check_name(value: str, what: str = "name", field: str | None = None) -> str:
    """Return ``value`` if it is an allowed name, else raise InvalidArgument naming ``what``."""
    field = field or what
    if not value:
        raise InvalidArgument(f"the {what} is empty; it must be {ALLOWED}", field=field)
    if not NAME_PATTERN.fullmatch(value) or ".." in value:
        shown = _shown(value)
        if ".." in value:
            problem = 'it contains ".."'
        elif len(value) > 100:
            problem = f"it is {len(value)} characters long"
        else:
            bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))), None)
            problem = (f"it contains the character {bad!r} (U+{ord(bad):04X})" if bad is not None
                       else "it must start with a letter or a digit")
        raise InvalidArgument(f"invalid {what} {shown}: {problem}; a {what} must be {ALLOWED}",
                              field=field)
    return value


def check_action(value: str) -> str:
    """An audit action: lower-case dotted words, e.g. "deployment.deploy"."""
    if not ACTION_PATTERN.fullmatch(value or ""):
        raise InvalidArgument(
            f"invalid audit action {_shown(value)}: use lower-case dotted words such as "
            "'deployment.deploy' (2 to 4 parts, letters, digits, '_' and '-')",
            field="action",
        )
    return value


def check_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """Free text (descriptions, reasons): any printable text up to ``limit`` characters."""
    if len(value) > limit:
        raise InvalidArgument(f"the {what} is {len(value)} characters long; at most {limit} are allowed",
                              field=what)
    if "\x00" in value:
        raise InvalidArgument(f"the {what} contains a NUL character", field=what)
    return value


def check_filename(value: str) -> str:
    """A display name for an artifact: printable, one line, at most 255 characters, no NUL."""
    if len(value) > MAX_FILENAME or not all(c.isprintable() for c in value):
        raise InvalidArgument(
            f"invalid artifact filename {_shown(value)}: use at most {MAX_FILENAME} printable characters",
            field="filename",
        )
    return value


def check_tags(tags: dict[str, str], field: str = "tags") -> dict[str, str]:
    """Tag keys follow the name rules; values are short printable text."""
    for key, value in tags.items():
        check_name(key, "tag key", field=field)
        if len(value) > 500 or "\x00" in value:
            raise InvalidArgument(f"the value of tag {key!r} must be at most 500 characters, no NUL",
                                  field=field)
    return dict(tags)


def _shown(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return ascii(shown)
