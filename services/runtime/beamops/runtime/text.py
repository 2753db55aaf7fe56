"""The rule for free text (reasons, descriptions, the facts of an audit event), checked at input.

Free text is shown on operators' terminals (``beamops audit``, ``beamops models show``) and in
logs, so it must not carry characters that drive a terminal or change what is shown:

- the C0 controls U+0000-U+001F (ESC, which starts colour, cursor and OSC 8 hyperlink sequences;
  NUL, CR and backspace, which hide or overwrite text; ...), DEL U+007F and the C1 controls
  U+0080-U+009F (U+009B is a one-character CSI, U+009D an OSC);
- the bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E and U+2066-U+2069 ("Trojan
  Source": they reorder the text shown);
- the line and paragraph separators U+2028 and U+2029.

One-line text (reasons, audit resources, audit details keys and values) refuses all of them;
multi-line text (descriptions) accepts tab and line feed, and no other. Such text is refused with
INVALID_ARGUMENT, a message naming the field, the character (quoted with :func:`ascii`) and its
position, as a bad name is (:mod:`beamops.runtime.names`): the request changes nothing, and what
is stored is exactly what the caller sent. Nothing is stripped or replaced. Display is guarded
too: the CLI shows any such character that reached storage before this rule visibly escaped.
"""

from __future__ import annotations

from .errors import InvalidArgument

MAX_TEXT = 10_000
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SEPARATORS = frozenset("\u2028\u2029")
MULTILINE_OK = frozenset("\t\n")
RULE = "control characters (ESC, C0 and C1 controls, DEL) and bidirectional controls are not allowed"


def is_forbidden(char: str, multiline: bool = False) -> bool:
    """Whether ``char`` may not appear in free text (one-line unless ``multiline``)."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return not (multiline and char in MULTILINE_OK)
    return char in BIDI_CONTROLS or char in SEPARATORS


def first_forbidden(value: str, multiline: bool = False) -> int | None:
    """The position of the first forbidden character of ``value``, or None."""
    return next((i for i, c in enumerate(value) if is_forbidden(c, multiline)), None)


def check_line(value: str, what: str, field: str | None = None, limit: int = MAX_TEXT) -> str:
    """One-line free text (a reason): returned unchanged, or InvalidArgument."""
    return _check(value, what, field or what, limit, multiline=False)


def check_text(value: str, what: str, field: str | None = None, limit: int = MAX_TEXT) -> str:
    """Multi-line free text (a description): tab and line feed allowed; else as :func:`check_line`."""
    return _check(value, what, field or what, limit, multiline=True)


def _check(value: str, what: str, field: str, limit: int, multiline: bool) -> str:
    value = value or ""
    if len(value) > limit:
        raise InvalidArgument(f"the {what} is {len(value)} characters long; at most {limit} are allowed",
                              field=field)
    at = first_forbidden(value, multiline)
    if at is not None:
        bad = value[at]
        allowed = " (tab and line feed are)" if multiline else ""
        raise InvalidArgument(f"the {what} contains the character {bad!a} (U+{ord(bad):04X}) at position "
                              f"{at}: {RULE}{allowed}", field=field)
    return value
