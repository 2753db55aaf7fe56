"""The CLI's printing shows server-supplied text literally in every form: tables, records, errors
(`beamops audit` end to end: tests/integration/test_cli_audit.py)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from beamops.cli.output import Output, shown

HOSTILE = "\x1b[31mred [link=http://x]y[/link] [bold]b[/bold] \x1b]8;;http://e\x07z\x1b]8;;\x07 \x9b2J \u202eab \u200b"
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _output() -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    output = Output()
    output.console = Console(file=out, force_terminal=True, color_system="truecolor", width=300)
    output.errors = Console(file=err, force_terminal=True, color_system="truecolor", width=300)
    return output, out, err


def _clean(text: str) -> str:
    """What is left once rich's own styling is taken out: must hold no escape of anyone else's."""
    assert "\x1b]8" not in text  # no OSC 8 hyperlink
    plain = RICH_SGR.sub("", text)
    assert not any(c in plain for c in "\x1b\x07\x9b\u202e\u200b"), repr(plain)
    return plain


def test_shown_escapes_every_non_printable_character():
    assert shown("a\x1b[31mb\x7f\x85\u202e\u2066\u200b\ufeff\u2028\tc\nd") == \
        "a\\x1b[31mb\\x7f\\x85\\u202e\\u2066\\u200b\\ufeff\\u2028\\tc\\nd"
    assert shown("a\nb", newlines=True) == "a\nb"
    assert shown("[bold]café ☃[/bold]") == "[bold]café ☃[/bold]"  # printable text is kept as is
    assert shown(None) == ""


def test_tables_records_and_errors_print_literally():
    output, out, err = _output()
    output.table(f"versions of {HOSTILE}", ["who", "reason"], [("mallory", HOSTILE), (None, 3)])
    output.record(f"model {HOSTILE}", {"description": HOSTILE, HOSTILE: "v"})
    output.error(f"bad reason {HOSTILE}\nsecond line")
    printed, errors = _clean(out.getvalue()), _clean(err.getvalue())
    for text in ("\\x1b[31mred", "[link=http://x]y[/link]", "[bold]b[/bold]", "\\x1b]8;;http://e\\x07z",
                 "\\x9b2J", "\\u202eab", "\\u200b"):
        assert printed.count(text) == 5, (text, printed)
        assert text in errors
    assert "error: bad reason" in errors and "\nsecond line" in errors
