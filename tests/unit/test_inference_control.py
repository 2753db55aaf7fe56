"""The control plane's collaborators on their own: the router (which deployment a route names)
and the alias follower (when an alias moved, and to what), each over a read-only view of the
deployments."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from beamops.inference.control.following import AliasFollower
from beamops.inference.control.routing import Router
from beamops.inference.domain import (
    Caller, Deployment, ResolvedVersion, Route, ServedVersion, State, Target, TargetKind,
)
from beamops.runtime.errors import FailedPrecondition, InvalidArgument, NotFound

from tests.unit.test_inference_gateway_routes import BATCHED


def dep(name, version, state=State.READY, alias="", model="jets", served=True) -> Deployment:
    target = Target(kind=TargetKind.ALIAS, value=alias) if alias else \
        Target(kind=TargetKind.VERSION, value=version)
    current = ServedVersion(version=version, signature=BATCHED, triton_name=f"{name}__t") if served else None
    return Deployment(name=name, model=model, target=target, following_alias=bool(alias),
                      current=current, state=state)


def view(*deployments):
    return MappingProxyType({d.name: d for d in deployments})


class Aliases:
    """Where each (model, alias) points; what was asked."""

    def __init__(self, points: dict[tuple[str, str], str]) -> None:
        self.points, self.asked = points, []

    async def resolve_alias(self, model, alias, auth):
        self.asked.append((model, alias, auth))
        return ResolvedVersion(model=model, version=self.points[(model, alias)], moved_by="someone")


CALLER = Caller("user", "Bearer t")


async def test_the_router_names_the_deployment_a_route_asks_for():
    deployments = view(dep("jets-a", "1.0"), dep("jets-b", "2.0", alias="production"),
                       dep("other", "1.0", model="other"))
    registry = Aliases({("jets", "staging"): "1.0"})
    router = Router(deployments, registry)
    assert await router.resolve(Route(deployment="jets-b"), CALLER) == "jets-b"
    assert await router.resolve(Route(model="jets", version="1.0"), CALLER) == "jets-a"
    assert await router.resolve(Route(model="jets", alias="production"), CALLER) == "jets-b"
    assert registry.asked == []  # a followed alias is decided from the deployments
    assert await router.resolve(Route(model="jets", alias="staging"), CALLER) == "jets-a"
    assert registry.asked == [("jets", "staging", "Bearer t")]  # asked with the caller's token
    assert await router.resolve(Route(model="other"), None) == "other"


async def test_the_router_refuses_what_names_nothing_or_does_not_serve():
    router = Router(view(dep("jets-a", "1.0"), dep("jets-b", "2.0"),
                         dep("broken", "1.0", state=State.FAILED, model="broken")), Aliases({}))
    with pytest.raises(NotFound, match="no deployment named 'nope'"):
        await router.resolve(Route(deployment="nope"), CALLER)
    with pytest.raises(NotFound, match="has no deployment"):
        await router.resolve(Route(model="nope"), CALLER)
    with pytest.raises(NotFound, match="version 3.0 of 'jets' is not deployed"):
        await router.resolve(Route(model="jets", version="3.0"), CALLER)
    with pytest.raises(FailedPrecondition, match="serving 1.0, 2.0"):
        await router.resolve(Route(model="jets"), CALLER)
    with pytest.raises(FailedPrecondition, match="'broken' is FAILED, not serving"):
        await router.resolve(Route(model="broken"), CALLER)
    with pytest.raises(InvalidArgument):
        await router.resolve(Route(), CALLER)


async def test_the_follower_switches_only_when_the_alias_moved():
    deployments = {d.name: d for d in (dep("moved", "1.0", alias="production"),
                                       dep("still", "2.0", alias="production", model="other"),
                                       dep("pinned", "1.0"))}
    registry = Aliases({("jets", "production"): "1.1", ("other", "production"): "2.0"})
    switched = []

    async def switch(name, resolved):
        switched.append((name, resolved.version))

    follower = AliasFollower(MappingProxyType(deployments), registry, switch, spawn=None,
                             auth="Bearer service", poll_interval_s=60)
    for name in ("moved", "still", "pinned", "gone"):
        await follower.follow(name)
    assert switched == [("moved", "1.1")]
    assert registry.asked == [("jets", "production", "Bearer service"),
                              ("other", "production", "Bearer service")]
