"""``beamops token``: create, revoke and list bearer tokens (administrators, on the server machine).

Works on the tokens file the services share (``var/auth/tokens.json`` for ``make up``); a token
is printed once and only its hash is stored. Revocation takes effect on the next call.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..app import app

token = typer.Typer(help="Bearer tokens (administrators, on the server machine).", no_args_is_help=True)
app.add_typer(token, name="token")

TOKENS_FILE = typer.Option(Path("var/auth/tokens.json"), "--tokens-file", envvar="BEAMOPS_TOKENS_FILE",
                           help="The services' shared tokens file.")


def _store(path: Path):
    from beamops.runtime.auth import TokenStore

    return TokenStore(path)


@token.command("create")
def create(ctx: typer.Context, name: str, role: str = typer.Option(..., help="reader, publisher, deployer or admin."),
           tokens_file: Path = TOKENS_FILE) -> None:
    """Create a token for NAME with a role; prints it once."""
    from beamops.runtime.auth import role_from_name

    secret = _store(tokens_file).create(name, role_from_name(role))
    ctx.obj.out.record("token created (shown once)", {"name": name, "role": role, "token": secret})


@token.command("revoke")
def revoke(ctx: typer.Context, name: str, tokens_file: Path = TOKENS_FILE) -> None:
    """Revoke NAME's token; it stops working on the next call."""
    _store(tokens_file).revoke(name)
    ctx.obj.out.record("token revoked", {"name": name})


@token.command("list")
def list_tokens(ctx: typer.Context, tokens_file: Path = TOKENS_FILE) -> None:
    """Token names and roles (never the tokens)."""
    names = _store(tokens_file).names()
    ctx.obj.out.table("tokens", ["name", "role"], sorted(names.items()))
