"""Token administration for admins who are not on the server machine: create, revoke and list
the bearer tokens of the tokens file the services share, each change in the audit log.

The token file is written first (its own lock and atomic write, ``runtime.auth.TokenStore``),
then the audit event; should the audit write fail, the token change is undone, so there is never
a token change the audit log does not show.
"""

from __future__ import annotations

from dataclasses import dataclass

from beamops.runtime.auth import ROLE_NAMES, ROLES_BY_NAME, TokenStore
from beamops.runtime.errors import FailedPrecondition, InvalidArgument
from beamops.runtime.pages import Listing, page_size

from .entities import Caller, Page
from .names import check_reason
from .registry import Registry


TOKENS = Listing("registry.tokens")  # keyset: the last name seen


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: int


class TokenAdmin:
    def __init__(self, tokens: TokenStore | None, registry: Registry) -> None:
        self._tokens = tokens
        self._registry = registry

    def _store(self) -> TokenStore:
        if self._tokens is None:
            raise FailedPrecondition("authentication is off on this registry: there are no tokens to manage")
        return self._tokens

    def create(self, caller: Caller, name: str, role: int, reason: str = "") -> tuple[str, TokenInfo]:
        """A new token for ``name``; returns it (shown once) with its info."""
        if role not in ROLE_NAMES:
            raise InvalidArgument("role must be reader, publisher, deployer or admin", field="role")
        check_reason(reason)
        store = self._store()
        secret = store.create(name, role)  # validates the name; ALREADY_EXISTS if taken
        try:
            self._registry.record_server_event(caller, "token.create", resource=f"token/{name}",
                                               reason=reason, details={"role": ROLE_NAMES[role]})
        except BaseException:
            store.revoke(name)
            raise
        return secret, TokenInfo(name, role)

    def revoke(self, caller: Caller, name: str, reason: str = "") -> None:
        check_reason(reason)
        store = self._store()
        role = store.names().get(name)
        store.revoke(name)  # NOT_FOUND if there is none
        try:
            self._registry.record_server_event(caller, "token.revoke", resource=f"token/{name}",
                                               reason=reason, details={"role": role or ""})
        except BaseException:
            # The token cannot be restored as it was (only its hash was kept): say so.
            raise FailedPrecondition(f"the token of {name!r} was revoked but the audit log could not "
                                     "record it; the revocation stands") from None

    def list(self, size: int = 0, token: str = "") -> Page:
        size, after = page_size(size), TOKENS.position(token)
        names = sorted(self._store().names().items())
        if after is not None:
            names = [(n, r) for n, r in names if n > str(after)]
        items = [TokenInfo(n, ROLES_BY_NAME[r]) for n, r in names[:size]]
        more = len(names) > size
        return Page(items, TOKENS.token(items[-1].name) if more else "")
