"""How commands print: rich tables for people, JSON (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table


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
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.console.print(table)

    def record(self, title: str, data: dict[str, Any]) -> None:
        """One object: key/value lines for people, a JSON object for scripts."""
        if self.json_mode:
            self.json(data)
            return
        self.console.print(f"[bold]{title}[/bold]")
        for key, value in data.items():
            self.console.print(f"  {key}: {value}")

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")

    def error(self, message: str) -> None:
        self.errors.print(f"[red]error:[/red] {message}", highlight=False)
