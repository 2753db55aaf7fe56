"""Names of models, aliases, IOV tags and global tags, and the registry's other allowlists.

Names follow the one rule of every resource kind, :mod:`beamops.runtime.names` (1 to 100 ASCII
letters, digits, '.', '_' and '-', starting with a letter or digit, no "..", case-sensitive and
kept as typed); this module re-exports its ``check_name``. Audit actions, free text and artifact
display names have their own rules below; free text follows :mod:`beamops.runtime.text` (no
control or bidirectional characters; descriptions may have tabs and line feeds, reasons are one
line).
"""

from __future__ import annotations

import re

from beamops.runtime.errors import InvalidArgument
from beamops.runtime.names import check_name
from beamops.runtime import text

__all__ = ["check_action", "check_filename", "check_name", "check_reason", "check_tags", "check_text"]

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}(\.[a-z][a-z0-9_-]{0,31}){1,3}$")
MAX_TEXT = 10_000
MAX_FILENAME = 255


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
    """Multi-line free text (descriptions): up to ``limit`` characters, no control or bidi
    character but tab and line feed (:func:`beamops.runtime.text.check_text`)."""
    return text.check_text(value, what, limit=limit)


def check_reason(value: str, what: str = "reason", limit: int = MAX_TEXT) -> str:
    """One-line free text (the reason of a change, which the audit log keeps): up to ``limit``
    characters, no control or bidi character at all (:func:`beamops.runtime.text.check_line`)."""
    return text.check_line(value, what, limit=limit)


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
