"""The Typer app every command module registers on, its global options and the State they set.

Command modules (:mod:`.commands`) import :data:`app` from here; :mod:`.app` imports the commands
and runs it, so registration goes one way only.
"""

from __future__ import annotations

from typing import Optional

import typer

from beamops.client import Client

from .output import Output

HELP = "beamops: the physicist's front door to the platform."

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)


class State:
    """What every command gets: the client (created on first use) and the output."""

    def __init__(self, token: str | None, json_mode: bool) -> None:
        self._token = token
        self._client: Client | None = None
        self.out = Output(json_mode)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self._token)
        return self._client


@app.callback()
def _global_options(
    ctx: typer.Context,
    token: Optional[str] = typer.Option(None, envvar="BEAMOPS_TOKEN",
                                        help="Bearer token (default: from `make up`'s config)."),
    json_mode: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    ctx.obj = State(token, json_mode)
