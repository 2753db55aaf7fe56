"""Administer bearer tokens on the server side: ``beamops-tokens create|revoke|list``.

Works directly on the tokens file the services share (``var/auth/tokens.json`` for ``make up``;
the ``auth`` volume in compose.yaml). The token is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .auth import ROLES_BY_NAME, TokenStore, role_from_name
from .errors import BeamopsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="beamops-tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-file", type=Path, default=Path("var/auth/tokens.json"))
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a token and print it")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=sorted(ROLES_BY_NAME))
    revoke = commands.add_parser("revoke", help="revoke every token of a name")
    revoke.add_argument("name")
    commands.add_parser("list", help="list token names and roles")
    args = parser.parse_args(argv)

    store = TokenStore(args.tokens_file)
    try:
        if args.command == "create":
            print(store.create(args.name, role_from_name(args.role)))
        elif args.command == "revoke":
            store.revoke(args.name)
            print(f"revoked {args.name}")
        else:
            for name, role in sorted(store.names().items()):
                print(f"{name}\t{role}")
    except BeamopsError as error:
        raise SystemExit(f"error: {error.message}") from None


if __name__ == "__main__":
    main()
