"""How commands print: rich tables for people, JSON (``--json``) for scripts.

Everything shown comes from servers and, through them, from other users (reasons, descriptions,
names of tokens...), so it is printed literally: every value becomes a :class:`rich.text.Text`
(never parsed as rich markup, so ``[bold]`` or ``[link=...]`` stay text and no OSC 8 hyperlink is
made), and every character that is not printable (ESC and the other C0/C1 controls, DEL, bidi
controls, zero-width characters...) is shown as its Python escape (``\\x1b``, ``\\u202e``), so
nothing written by someone else can drive the terminal. JSON escapes them already.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text


def shown(value: Any, newlines: bool = False) -> str:
    """``value`` as text with every non-printable character (controls, ESC, DEL, bidi and other
    format characters, separators) replaced by its Python escape, e.g. ESC by ``\\x1b``;
    ``newlines`` keeps line feeds (error messages)."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() or (newlines and c == "\n") else ascii(c)[1:-1] for c in text)


def literal(value: Any, style: str = "", newlines: bool = False) -> Text:
    """A rich Text that shows ``value`` literally (no markup, escaped controls)."""
    return Text(shown(value, newlines), style=style)


@dataclass
class Output:
    json_mode: bool = False

    def __post_init__(self) -> None:
        self.console = Console()
        self.errors = Console(stderr=True)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              records: list[dict] | None = None) -> None:
        """A table for people; with --json, ``records`` (or the rows keyed by column) instead."""
        rows = [list(r) for r in rows]
        if self.json_mode:
            data = records if records is not None else [dict(zip(columns, r)) for r in rows]
            self.json(data)
            return
        table = Table(title=literal(title, style="table.title"), title_justify="left")
        for column in columns:
            table.add_column(literal(column))
        for row in rows:
            table.add_row(*(literal(v) for v in row))
        self.console.print(table, highlight=False)

    def record(self, title: str, data: dict[str, Any]) -> None:
        """One object: key/value lines for people, a JSON object for scripts."""
        if self.json_mode:
            self.json(data)
            return
        self.console.print(literal(title, style="bold"), highlight=False)
        for key, value in data.items():
            self.console.print(Text.assemble("  ", literal(key), ": ", literal(value)), highlight=False)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")

    def error(self, message: str) -> None:
        self.errors.print(Text.assemble(("error:", "red"), " ", literal(message, newlines=True)),
                          highlight=False)
