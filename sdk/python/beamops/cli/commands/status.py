"""``beamops status``: is each service up?"""

from __future__ import annotations

import typer

from beamops.config import SERVICES
from beamops.health import health_status

from ..root import app


@app.command()
def status(ctx: typer.Context) -> None:
    """Show each service's address and health (SERVING, NOT_SERVING or DOWN)."""
    state = ctx.obj
    connection = state.client.connection
    rows = [(s, connection.address(s), health_status(connection.address(s))) for s in SERVICES]
    state.out.table("beamops services", ["service", "address", "health"], rows)
    if any(row[2] != "SERVING" for row in rows):
        raise typer.Exit(7)
