"""Alias following: a deployment whose target is an alias serves the version the alias points at.

Alias moves reach the follower two ways: the registry's alias events (WatchAliasEvents), so a
move reaches traffic as soon as the new version is loaded, and a poll every
``alias_poll_interval_s`` as a safety net. The follower only finds out where an alias points;
switching (under the deployment's lock, loss-free) is the manager's, which it is handed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping

from ..domain import Deployment, ResolvedVersion, State
from .registry_client import RegistryClient

log = logging.getLogger(__name__)

#: Pauses between attempts at watching the registry's alias events (doubling).
ALIAS_WATCH_MIN_PAUSE_S, ALIAS_WATCH_MAX_PAUSE_S = 0.5, 5.0


class AliasFollower:
    """Follows the aliases of ``deployments`` (a read-only view).

    ``switch(name, resolved)`` moves deployment ``name`` to the version ``resolved`` (its alias
    moved there); ``spawn(coro)`` runs a coroutine as a background task of the manager's (so it
    ends with the manager). The registry is asked with ``auth``, the service's own token.
    """

    def __init__(self, deployments: Mapping[str, Deployment], registry: RegistryClient,
                 switch: Callable[[str, ResolvedVersion], Awaitable[None]],
                 spawn: Callable[[Coroutine], None], auth: str | None, poll_interval_s: float) -> None:
        self._deployments, self._registry = deployments, registry
        self._switch, self._spawn = switch, spawn
        self._auth, self._poll_interval_s = auth, poll_interval_s

    async def poll(self) -> None:
        """Looks where every followed alias points, every ``poll_interval_s``."""
        while True:
            await asyncio.sleep(self._poll_interval_s)
            for dep in list(self._deployments.values()):
                if not dep.following_alias or dep.state != State.READY or dep.current is None:
                    continue
                try:
                    await self.follow(dep.name)
                except Exception as exc:  # noqa: BLE001 - next poll retries
                    log.warning("following alias of %s: %s", dep.name, exc)

    async def watch(self) -> None:
        """Follows alias moves as the registry records them (WatchAliasEvents), so a move reaches
        traffic as soon as the new version is loaded; the poll stays as a safety net."""
        after, pause = None, ALIAS_WATCH_MIN_PAUSE_S
        while True:
            try:
                async for event_id, model, alias in self._registry.alias_events(after, self._auth):
                    after, pause = event_id, ALIAS_WATCH_MIN_PAUSE_S
                    for dep in list(self._deployments.values()):
                        if dep.following_alias and dep.model == model and dep.target.value == alias:
                            self._spawn(self._follow_logged(dep.name))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the registry is away: watch again later
                log.info("watching alias moves: %s; again in %.1f s", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, ALIAS_WATCH_MAX_PAUSE_S)

    async def _follow_logged(self, name: str) -> None:
        try:
            await self.follow(name)
        except Exception as exc:  # noqa: BLE001 - the poll retries
            log.warning("following alias of %s: %s", name, exc)

    async def follow(self, name: str) -> None:
        """Switches ``name`` to the version its alias points at now, if it moved."""
        dep = self._deployments.get(name)
        if dep is None or not dep.following_alias or dep.current is None:
            return
        resolved = await self._registry.resolve_alias(dep.model, dep.target.value, self._auth)
        if resolved.version == dep.current.version:
            return
        await self._switch(name, resolved)
