"""Which deployment a route names. The gateway decides what its route table can and asks the
service (``GatewayService.Resolve``) about the rest: a run with a global tag, an alias no
deployment follows, no version among several, a deployment that is not serving.

No gRPC here. The router reads the deployments through a read-only view (the manager's) and asks
the registry what an alias or a global tag and run points at, with the caller's token.
"""

from __future__ import annotations

from collections.abc import Mapping

from beamops.runtime.errors import FailedPrecondition, InvalidArgument, NotFound

from ..domain import SERVING_STATES, Caller, Deployment, Route, TargetKind
from .registry_client import RegistryClient


def named(deployments: Mapping[str, Deployment], name: str) -> Deployment:
    """The deployment called ``name``; NOT_FOUND when there is none."""
    dep = deployments.get(name)
    if dep is None:
        raise NotFound(f"no deployment named {name!r}", deployment=name)
    return dep


class Router:
    def __init__(self, deployments: Mapping[str, Deployment], registry: RegistryClient) -> None:
        self._deployments, self._registry = deployments, registry

    async def resolve(self, route: Route, caller: Caller | None) -> str:
        """The name of the serving deployment a route names, for the gateway, which answers it
        (FAILED_PRECONDITION, with its state and why, for a deployment that does not serve)."""
        dep = await self._select(route, caller)
        if dep.state not in SERVING_STATES or dep.current is None:
            raise FailedPrecondition(
                f"deployment {dep.name!r} is {dep.state.value}, not serving"
                + (f": {dep.state_message}" if dep.state_message else ""), deployment=dep.name)
        return dep.name

    async def _select(self, route: Route, caller: Caller | None) -> Deployment:
        if route.deployment:
            return named(self._deployments, route.deployment)
        if not route.model:
            raise InvalidArgument("name a deployment or a model", field="route")
        candidates = [d for d in self._deployments.values() if d.model == route.model]
        if not candidates:
            raise NotFound(f"model {route.model!r} has no deployment", model=route.model)
        serving = [d for d in candidates if d.current is not None]
        if route.version:
            chosen = [d for d in serving if d.current.version == route.version]
            if not chosen:
                raise NotFound(f"version {route.version} of {route.model!r} is not deployed",
                               model=route.model)
            return _pick(chosen)
        if route.alias:
            chosen = [d for d in candidates if d.following_alias and d.target.value == route.alias]
            if chosen:
                return _pick(chosen)
            resolved = await self._registry.resolve_alias(route.model, route.alias,
                                                          caller.auth if caller else None)
            return await self._select(Route(model=route.model, version=resolved.version), caller)
        if route.run is not None:
            tags = {d.target.value for d in candidates if d.target.kind == TargetKind.GLOBAL_TAG_RUN}
            tag = route.global_tag or (tags.pop() if len(tags) == 1 else "")
            if not tag:
                raise FailedPrecondition(f"name the global tag: {route.model!r} has "
                                         f"{'several' if tags else 'no'} global-tag deployments")
            resolved = await self._registry.resolve_global_tag(route.model, tag, route.run,
                                                               caller.auth if caller else None)
            return await self._select(Route(model=route.model, version=resolved.version), caller)
        versions = {d.current.version for d in serving}
        if len(versions) > 1:
            raise FailedPrecondition(
                f"model {route.model!r} has deployments serving {', '.join(sorted(versions))}; "
                "name a deployment, version or alias", model=route.model)
        return _pick(serving or candidates)


def _pick(deployments: list[Deployment]) -> Deployment:
    """Of several deployments a model selector matches: the first by name of those serving, else
    the first by name (Predict then says why it does not serve). The gateway picks the same way
    (its routes.Table.Select)."""
    ordered = sorted(deployments, key=lambda d: d.name)
    return next((d for d in ordered if d.state in SERVING_STATES and d.current is not None),
                ordered[0])
