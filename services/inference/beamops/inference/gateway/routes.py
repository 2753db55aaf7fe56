"""What the gateway (the compiled data plane) gets from this service, as plain logic (no gRPC).

* The route table: the deployments the gateway may serve itself, with everything its Predict
  needs (:func:`route_for`), kept in a :class:`RouteTable` whose generation grows whenever the
  table changes; watchers await the next generation.
* How long the gateway may reuse the answer about a caller's token (:func:`answer_lifetime_ms`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from ..domain import SERVING_STATES, Deployment, GatewayRoute
from ..triton.repository import effective_max_batch_size


def route_for(dep: Deployment, default_max_batch_size: int, drift: bool) -> GatewayRoute | None:
    """The route of a deployment, or None when Predict would refuse it (not serving, or nothing
    served yet), with the max_batch_size of its Triton config (``config_for``)."""
    served = dep.current
    if dep.state not in SERVING_STATES or served is None:
        return None
    return GatewayRoute(
        deployment=dep.name, model=dep.model, parameters_version=served.version,
        triton_model=served.triton_name, signature=served.signature,
        max_batch_size=effective_max_batch_size(served.signature, dep.serving,
                                                default_max_batch_size),
        drift=drift, following_alias=dep.target.value if dep.following_alias else "",
        artifact_sha256=served.sha256)


class RouteTable:
    """The current routes and their generation.

    The generation starts at the time the table was made (milliseconds since the epoch), so it
    also grows across restarts of the service, and grows by one with every change of content;
    :meth:`update` with the same routes changes nothing.
    """

    def __init__(self, start_generation: int | None = None) -> None:
        self._generation = time.time_ns() // 1_000_000 if start_generation is None else start_generation
        self._routes: tuple[GatewayRoute, ...] = ()
        self._changed = asyncio.Event()
        self.watchers = 0  # gateways following the table now (WatchRoutes streams open)
        self._applied = 0  # the newest generation a gateway said it serves with
        self._applied_changed = asyncio.Event()

    @property
    def generation(self) -> int:
        return self._generation

    def snapshot(self) -> tuple[int, tuple[GatewayRoute, ...]]:
        return self._generation, self._routes

    def update(self, routes: Iterable[GatewayRoute]) -> bool:
        """Replaces the table (sorted by deployment); True when its content changed."""
        routes = tuple(sorted(routes, key=lambda r: r.deployment))
        if routes == self._routes:
            return False
        self._routes = routes
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True

    def applied(self, generation: int) -> None:
        """A gateway serves with ``generation`` now."""
        if generation > self._applied:
            self._applied = generation
            changed, self._applied_changed = self._applied_changed, asyncio.Event()
            changed.set()

    async def in_use(self, timeout_s: float) -> bool:
        """Waits until every gateway following the table serves with the current generation (at
        once when none follows it); False if that took longer than ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.watchers and self._applied < self._generation:
                    await self._applied_changed.wait()
        except TimeoutError:
            return False
        return True

    async def changed(self, after_generation: int) -> int:
        """Returns the generation once it is greater than ``after_generation``."""
        while self._generation <= after_generation:
            await self._changed.wait()
        return self._generation


def answer_lifetime_ms(cache_s: float, expires_at: float | None, now: float | None = None) -> int:
    """How long the gateway may reuse an Authorize answer: ``cache_s``, but never past the
    token's own expiry (a JWT's exp, seconds since the epoch)."""
    lifetime_s = cache_s
    if expires_at is not None:
        left = expires_at - (time.time() if now is None else now)
        lifetime_s = min(lifetime_s, max(left, 0.0))
    return int(lifetime_s * 1000)
