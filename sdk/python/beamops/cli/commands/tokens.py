"""``beamops token``: create, revoke and list bearer tokens (administrators).

By default it works on the tokens file the services share (``var/auth/tokens.json`` for
``make up``), on the server machine. With ``--remote`` it asks the registry instead (the
connection of every other command; an admin token), from anywhere, and the change is in the
audit log. A token is printed once and only its hash is stored; revocation takes effect on the
next call.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..root import app

token = typer.Typer(help="Bearer tokens (administrators, on the server machine).", no_args_is_help=True)
app.add_typer(token, name="token")

TOKENS_FILE = typer.Option(Path("var/auth/tokens.json"), "--tokens-file", envvar="BEAMOPS_TOKENS_FILE",
                           help="The services' shared tokens file.")
REMOTE = typer.Option(False, "--remote", help="Ask the registry (admin token) instead of editing the file.")
REASON = typer.Option("", "--reason", help="Why (kept in the audit log; with --remote).")


def _store(path: Path):
    from beamops.runtime.auth import TokenStore

    return TokenStore(path)


@token.command("create")
def create(ctx: typer.Context, name: str, role: str = typer.Option(..., help="reader, publisher, deployer or admin."),
           tokens_file: Path = TOKENS_FILE, remote: bool = REMOTE, reason: str = REASON) -> None:
    """Create a token for NAME with a role; prints it once."""
    from beamops.runtime.auth import role_from_name

    role_from_name(role)  # a clear error for a bad role, before anything is asked
    if remote:
        secret = ctx.obj.client.registry.create_token(name, role, reason)
    else:
        secret = _store(tokens_file).create(name, role_from_name(role))
    ctx.obj.out.record("token created (shown once)", {"name": name, "role": role, "token": secret})


@token.command("revoke")
def revoke(ctx: typer.Context, name: str, tokens_file: Path = TOKENS_FILE, remote: bool = REMOTE,
           reason: str = REASON) -> None:
    """Revoke NAME's token; it stops working on the next call."""
    if remote:
        ctx.obj.client.registry.revoke_token(name, reason)
    else:
        _store(tokens_file).revoke(name)
    ctx.obj.out.record("token revoked", {"name": name})


@token.command("list")
def list_tokens(ctx: typer.Context, tokens_file: Path = TOKENS_FILE, remote: bool = REMOTE) -> None:
    """Token names and roles (never the tokens)."""
    names = ctx.obj.client.registry.tokens() if remote else _store(tokens_file).names()
    ctx.obj.out.table("tokens", ["name", "role"], sorted(names.items()))
