"""Deployments: what is served, how it gets loaded into Triton, and how it switches versions.

No gRPC here. The manager gets its parts through its constructor: the store, the registry
adapter, the Triton backend, the model repository, the alert book and the metrics. It owns the
deployments; what reads them gets a read-only view (:attr:`DeploymentManager.deployments`): the
alias follower (``following.py``) and the drift watch (``drift/watch.py``), which the manager
makes and runs, and the router (``routing.py``), which the server makes for the gateway.

Switching versions (alias moved, Rollback, Deploy with replace) never fails a request: the new
version is loaded under a new Triton model name and must be ready; only then does the deployment
point at it; once the gateway routes no request to the old model, it is unloaded.

No audit, no change: every change (Deploy, Deploy with replace, Undeploy, Rollback, a switch for
an alias move) is recorded in the registry's audit log (RecordAuditEvent) *before* anything here
changes, under the deployment's lock, with the caller's own token. That record is also the
registry's decision whether the caller may change this model (a restricted model needs the owner,
an admin or a grant of deployer on it: ``beamops.registry.audit_actions``), so the rule has one
home. Refused (PERMISSION_DENIED) or not written (registry down: UNAVAILABLE), the call fails and
nothing was deployed, unloaded or switched. A change that fails after its record (Triton cannot
load the version) leaves the record of what was ordered, and the deployment's state and a
DEPLOYMENT_FAILED alert say it failed. A switch for an alias move (the alias follower's, with the
service's own token) that cannot be recorded does not happen: it waits, with a WARNING alert,
and the follower's next look (every ``alias_poll_interval_s``) tries again, records it once
written, then switches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from beamops.runtime.errors import (
    AlreadyExists, BeamopsError, DataLoss, FailedPrecondition, InvalidArgument, PermissionDenied,
    Unavailable,
)
from beamops.runtime.names import check_name

from ..alerts import AlertBook
from ..domain import (
    SERVING_STATES, AlertKind, Caller, DeployCommand, Deployment, DeploymentUsage, DriftReport,
    GatewayRoute, ResolvedVersion, ServedVersion, ServingConfig, Severity, State, Target, TargetKind,
    utcnow,
)
from ..drift.watch import DriftWatch
from ..gateway.routes import RouteTable, route_for
from ..metrics import InferenceMetrics
from ..triton.repository import ModelRepository, config_for, is_triton_name_of, triton_name
from .following import AliasFollower
from .routing import named

log = logging.getLogger(__name__)

GATEWAY_SYNC_TIMEOUT_S = 5.0

#: How each recorded change is named in a refusal.
CHANGES = {
    "deployment.deploy": "deploying", "deployment.replace": "switching", "deployment.undeploy": "undeploying",
    "deployment.rollback": "rolling back", "deployment.follow_alias": "following the alias of",
}


@dataclass
class Options:
    default_max_batch_size: int = 64
    intra_op_threads: int = 1
    alias_poll_interval_s: float = 5.0
    drift_tick_s: float = 1.0
    service_auth: str | None = None
    service_name: str = "inference-service"


#: After a model was reloaded because its process died, reports of that death are ignored this
#: long (they are about requests that failed before the reload; see restart_model).
RESTART_QUIET_S = 5.0


class DeploymentManager:
    def __init__(self, store, registry, backend, repository: ModelRepository, alerts: AlertBook,
                 metrics: InferenceMetrics, options: Options) -> None:
        self._store, self._registry, self._backend = store, registry, backend
        self._repository, self._alerts, self._metrics = repository, alerts, metrics
        self._options = options
        self._deployments: dict[str, Deployment] = {d.name: d for d in store.deployments()}
        #: The deployments by name, read-only and always current.
        self.deployments: Mapping[str, Deployment] = MappingProxyType(self._deployments)
        self._aliases = AliasFollower(self.deployments, registry, self._follow_to, self._spawn,
                                      options.service_auth, options.alias_poll_interval_s)
        self._drift = DriftWatch(self.deployments, alerts, metrics, options.drift_tick_s)
        self._locks: dict[str, asyncio.Lock] = {}
        self._idempotency: dict[tuple[str, str], tuple[float, str]] = {}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._restarting: set[str] = set()  # Triton models being reloaded (their process died)
        self._restarted_at: dict[str, float] = {}  # when each finished reloading (monotonic)
        #: A switch for an alias move recorded but not made yet (it failed; the follower retries):
        #: deployment -> (Triton model served, version), so a retry is not recorded again.
        self._follow_recorded: dict[str, tuple[str, str]] = {}
        self._routes = RouteTable()
        self._refresh_routes()

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restores stored deployments into Triton, then follows aliases and watches drift."""
        self._tasks.append(asyncio.create_task(self._restore_all(), name="restore"))
        self._tasks.append(asyncio.create_task(self._aliases.poll(), name="aliases"))
        self._tasks.append(asyncio.create_task(self._aliases.watch(), name="alias-events"))
        self._tasks.append(asyncio.create_task(self._drift.watch(), name="drift"))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)

    async def reload_all(self, attempts: int = 60, pause_s: float = 0.5) -> None:
        """After Triton restarted (it forgot every model): load what each deployment serves,
        retrying while Triton is still coming up."""
        for _ in range(attempts):
            if await self._backend.is_ready():
                break
            await asyncio.sleep(pause_s)
        pending = [d.name for d in self._deployments.values()
                   if d.current is not None and d.state in SERVING_STATES]
        for attempt in range(attempts):
            failed = []
            for name in pending:
                dep = self._deployments.get(name)
                if dep is None or dep.current is None:
                    continue
                try:
                    await self._ensure_entry(dep, dep.current, self._options.service_auth)
                    await self._backend.load(dep.current.triton_name)
                except BeamopsError as exc:
                    log.warning("reloading %s after a Triton restart (attempt %d): %s",
                                name, attempt + 1, exc)
                    failed.append(name)
            if not failed:
                return
            pending = failed
            await asyncio.sleep(pause_s)
        log.error("could not reload %s after the Triton restart", ", ".join(pending))

    def restart_model(self, triton_model: str) -> None:
        """Triton said that the process running ``triton_model``'s code (a Python-backend stub)
        died, and it answers so until the model is loaded again: reloads it in the background
        (once at a time) if a deployment still serves it, with a BACKEND_UNAVAILABLE alert for
        the deployment until it is back. Reports that come within ``RESTART_QUIET_S`` after a
        reload are about failures from before it (the gateway reports once a second) and are
        ignored; if the new process dies too, later failures reload it again."""
        if triton_model in self._restarting or (
                time.monotonic() - self._restarted_at.get(triton_model, -RESTART_QUIET_S)
                < RESTART_QUIET_S):
            return
        for dep in self._deployments.values():
            if dep.current is not None and dep.current.triton_name == triton_model:
                self._restarting.add(triton_model)
                self._spawn(self._restart_model(dep.name, triton_model))
                return

    async def _restart_model(self, name: str, triton_model: str) -> None:
        key = f"backend/model/{name}"
        try:
            async with self._lock(name):  # no switch or undeploy meanwhile
                dep = self._deployments.get(name)
                if dep is None or dep.current is None or dep.current.triton_name != triton_model:
                    return
                log.warning("the process running %s (deployment %s) died; reloading the model",
                            triton_model, name)
                self._alerts.fire(key, AlertKind.BACKEND_UNAVAILABLE, Severity.CRITICAL,
                                  "the process running the model died; reloading it",
                                  deployment=name, model=dep.model, version=dep.current.version)
                self._metrics.model_restarts.labels(name).inc()
                await self._backend.unload(triton_model)  # a load alone keeps the dead process
                await self._backend.load(triton_model)
                self._alerts.resolve(key)
                log.info("%s (deployment %s) reloaded", triton_model, name)
        except BeamopsError as exc:
            log.error("reloading %s (deployment %s) failed: %s", triton_model, name, exc)
        finally:
            self._restarted_at[triton_model] = time.monotonic()
            self._restarting.discard(triton_model)

    # ---- queries --------------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        return named(self._deployments, name)

    def list(self, model: str = "", state: State | None = None) -> list[Deployment]:
        return [d for _, d in sorted(self._deployments.items())
                if (not model or d.model == model) and (state is None or d.state == state)]

    def drift_report(self, name: str) -> DriftReport:
        return self._drift.report(self.get(name))

    # ---- deploy / undeploy / rollback / an alias moved -----------------------------------------------

    async def deploy(self, cmd: DeployCommand, caller: Caller) -> Deployment:
        name = cmd.name or cmd.model
        _validate(cmd, name)
        key = (caller.name, cmd.idempotency_key)
        if cmd.idempotency_key:
            seen = self._idempotency.get(key)
            if seen and time.time() - seen[0] < 86400 and seen[1] in self._deployments:
                return self._deployments[seen[1]]
        async with self._lock(name):
            existing = self._deployments.get(name)
            if existing is not None and existing.state != State.FAILED:
                if not cmd.replace:
                    raise AlreadyExists(f"a deployment named {name!r} exists; pass replace=true "
                                        "to switch it", deployment=name)
                if existing.model != cmd.model:
                    raise FailedPrecondition(f"deployment {name!r} serves model {existing.model!r}, "
                                             f"not {cmd.model!r}", deployment=name)
            resolved = await self._resolve(cmd.model, cmd.target, caller.auth)
            switching = existing is not None and existing.state != State.FAILED
            served = existing.current if switching else None
            await self._audit("deployment.replace" if switching else "deployment.deploy", name, cmd.model,
                              cmd.reason, caller, from_version=served.version if served else "",
                              version=resolved.version, sha256=resolved.sha256,
                              target=f"{cmd.target.kind.value}:{cmd.target.value}")
            if switching:
                dep = existing.model_copy(update=dict(
                    target=cmd.target, following_alias=cmd.target.kind == TargetKind.ALIAS,
                    serving=cmd.serving, thresholds=cmd.thresholds))
                self._put(dep)
                await self._switch(dep, resolved, caller, cmd.reason)
                dep = self._deployments[name]
            else:
                dep = Deployment(
                    name=name, model=cmd.model, target=cmd.target,
                    following_alias=cmd.target.kind == TargetKind.ALIAS,
                    created_by=caller.name, changed_by=caller.name, change_reason=cmd.reason,
                    serving=cmd.serving, thresholds=cmd.thresholds,
                    generation=existing.generation + 1 if existing else 0)
                self._put(dep)
                if cmd.return_immediately:
                    self._spawn(self._first_load(dep, resolved, caller, cmd.reason))
                else:
                    dep = await self._first_load(dep, resolved, caller, cmd.reason)
        if cmd.idempotency_key:
            self._idempotency[key] = (time.time(), name)
        return dep

    async def undeploy(self, name: str, reason: str, caller: Caller) -> Deployment:
        async with self._lock(name):
            dep = self.get(name)
            await self._audit("deployment.undeploy", name, dep.model, reason, caller,
                              version=dep.current.version if dep.current else "")
            before = dep
            dep = self._put(dep.model_copy(update=dict(state=State.UNLOADING,
                                                       state_message="unloading")))
            if dep.current is not None:
                await self._retire(dep.current.triton_name)
            self._deployments.pop(name, None)
            self._drift.forget(name)
            self._refresh_routes()
            self._store.delete_deployment(name)
            self._alerts.resolve_prefix(f"{name}/")
            self._follow_recorded.pop(name, None)
        return before

    async def rollback(self, name: str, expected_version: str, reason: str,
                       caller: Caller) -> Deployment:
        async with self._lock(name):
            dep = self.get(name)
            if dep.state == State.SWITCHING:
                raise FailedPrecondition(f"deployment {name!r} is switching versions; retry when "
                                         "it is READY", deployment=name)
            if dep.previous is None or dep.current is None:
                raise FailedPrecondition(f"deployment {name!r} has no previous version to roll "
                                         "back to", deployment=name)
            if expected_version and dep.current.version != expected_version:
                raise FailedPrecondition(
                    f"deployment {name!r} serves {dep.current.version}, not {expected_version}; "
                    "not rolled back", deployment=name)
            previous = dep.previous
            await self._audit("deployment.rollback", name, dep.model, reason, caller,
                              from_version=dep.current.version, version=previous.version,
                              sha256=previous.sha256)
            resolved = ResolvedVersion(
                model=dep.model, version=previous.version,
                model_type_version=previous.model_type_version, artifact_id=previous.artifact_id,
                sha256=previous.sha256, signature=previous.signature,
                references=previous.references)
            dep = self._put(dep.model_copy(update=dict(
                following_alias=False, target=Target(kind=TargetKind.VERSION, value=previous.version))))
            await self._switch(dep, resolved, caller, reason)
            return self._deployments[name]

    async def _follow_to(self, name: str, resolved: ResolvedVersion) -> None:
        """The alias ``name`` follows points at ``resolved`` now (the alias follower says so):
        switches to it, unless the deployment was undeployed, pinned or switched meanwhile."""
        async with self._lock(name):
            dep = self._deployments.get(name)
            if dep is None or not dep.following_alias or dep.current is None \
                    or dep.current.version == resolved.version:
                return
            actor = Caller(resolved.moved_by or self._options.service_name, self._options.service_auth)
            reason = f"alias {dep.target.value!r} moved to {resolved.version}"
            attempt = (dep.current.triton_name, resolved.version)
            if self._follow_recorded.get(name) != attempt:  # a retry of a failed switch: recorded
                try:
                    await self._audit("deployment.follow_alias", name, dep.model, reason, actor,
                                      from_version=dep.current.version, version=resolved.version,
                                      sha256=resolved.sha256)
                except BeamopsError as exc:
                    self._alerts.fire(
                        f"{name}/switch", AlertKind.DEPLOYMENT_FAILED, Severity.WARNING,
                        f"{name}: {reason}; still serving {dep.current.version} until the switch is "
                        f"recorded in the registry's audit log ({exc.message})",
                        deployment=name, model=dep.model, version=dep.current.version)
                    raise
                self._follow_recorded[name] = attempt
            await self._switch(dep, resolved, actor, reason)
            self._follow_recorded.pop(name, None)

    # ---- the gateway (compiled data plane) ------------------------------------------------------------
    # The route table is derived from the deployments: every change of one (``_put``, removals)
    # refreshes it, and a switch waits until the gateway serves with it (``_first_load``,
    # ``_retire``). So the manager keeps it; ``gateway.routes.RouteTable`` does the work.

    def routes(self) -> tuple[int, tuple[GatewayRoute, ...]]:
        """The generation and the routes of what the gateway may serve itself (recomputed: a
        change missed elsewhere shows up here)."""
        self._refresh_routes()
        return self._routes.snapshot()

    @contextlib.contextmanager
    def gateway_watching(self):
        """While a gateway follows the route table (its WatchRoutes stream is open)."""
        self._routes.watchers += 1
        try:
            yield
        finally:
            self._routes.watchers -= 1

    def gateway_applied(self, generation: int) -> None:
        """The gateway serves with route table ``generation`` now."""
        self._routes.applied(generation)

    async def routes_changed(self, after_generation: int) -> int:
        """Waits until the route table's generation is past ``after_generation``; returns it."""
        return await self._routes.changed(after_generation)

    def _refresh_routes(self) -> None:
        """Called wherever a deployment changes (``_put``, removals): bumps the generation when
        what Predict serves changed (state, version, serving config, drift watching)."""
        default = self._options.default_max_batch_size
        routes = []
        for dep in self._deployments.values():
            route = route_for(dep, default, self._drift.watches(dep))
            if route is not None:
                routes.append(route)
        self._routes.update(routes)

    def record_usage(self, usages: Sequence[DeploymentUsage]) -> None:
        """What the gateway served, into the series Predict feeds and the drift monitors.

        Usage of a deployment that no longer exists is dropped; samples of a version that is no
        longer served (a switch since) are dropped, its counts are kept."""
        for usage in usages:
            dep = self._deployments.get(usage.deployment)
            if dep is None:
                continue
            self._metrics.record_usage(dep.name, usage)
            self._drift.observe(dep, usage)

    # ---- internals -------------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _put(self, dep: Deployment) -> Deployment:
        self._deployments[dep.name] = dep
        self._refresh_routes()
        self._store.save_deployment(dep)
        return dep

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resolve(self, model: str, target: Target, auth: str | None) -> ResolvedVersion:
        if target.kind == TargetKind.VERSION:
            return await self._registry.get_version(model, target.value, auth)
        if target.kind == TargetKind.ALIAS:
            return await self._registry.resolve_alias(model, target.value, auth)
        return await self._registry.resolve_global_tag(model, target.value, target.run, auth)

    async def _prepare(self, dep: Deployment, resolved: ResolvedVersion, auth: str | None,
                       generation: int) -> ServedVersion:
        """Downloads (sha256 checked), writes the repository entry, loads it; returns it served."""
        if not resolved.artifact_id:
            raise FailedPrecondition(f"version {resolved.version} of {dep.model!r} has no "
                                     "artifact to serve", model=dep.model)
        if not resolved.signature.inputs or not resolved.signature.outputs:
            raise FailedPrecondition(f"version {resolved.version} of {dep.model!r} has no ONNX "
                                     "signature: only ONNX models can be deployed", model=dep.model)
        served = ServedVersion(
            version=resolved.version, model_type_version=resolved.model_type_version,
            artifact_id=resolved.artifact_id, sha256=resolved.sha256,
            signature=resolved.signature, references=resolved.references,
            triton_name=triton_name(dep.name, resolved.version, generation))
        await self._ensure_entry(dep, served, auth)
        try:
            await self._backend.load(served.triton_name)
        except FailedPrecondition as exc:
            self._repository.remove(served.triton_name)
            raise FailedPrecondition(f"Triton could not load version {resolved.version} of "
                                     f"{dep.model!r}: {exc.message}", model=dep.model) from None
        if not await self._backend.is_model_ready(served.triton_name):
            raise Unavailable(f"version {resolved.version} of {dep.model!r} did not become ready "
                              "in Triton")
        return served

    async def _ensure_entry(self, dep: Deployment, served: ServedVersion, auth: str | None) -> None:
        """The repository entry exists with the right bytes (re-downloaded if not)."""
        config = self._config(served, dep.serving)
        if self._repository.sha256(served.triton_name) == served.sha256 and served.sha256:
            return
        data = await self._registry.download(served.artifact_id, served.sha256, auth)
        self._repository.write(served.triton_name, data, config)

    def _config(self, served: ServedVersion, serving: ServingConfig) -> str:
        try:
            return config_for(served.triton_name, served.signature, serving,
                              self._repository.backend,
                              default_max_batch_size=self._options.default_max_batch_size,
                              intra_op_threads=self._options.intra_op_threads)
        except ValueError as exc:
            raise FailedPrecondition(f"this version cannot be served by Triton: {exc}") from None

    def _free_generation(self, dep: Deployment, version: str) -> int:
        """A generation whose Triton name is not the one being served."""
        taken = {dep.current.triton_name} if dep.current else set()
        gen = 0
        while triton_name(dep.name, version, gen) in taken:
            gen = dep.generation + 1 if gen == 0 else gen + 1
        return gen

    async def _first_load(self, dep: Deployment, resolved: ResolvedVersion, caller: Caller,
                          reason: str) -> Deployment:
        dep = self._put(dep.model_copy(update=dict(state=State.LOADING, next_version=resolved.version,
                                                   state_message=f"loading {resolved.version}")))
        try:
            served = await self._prepare(dep, resolved, caller.auth, dep.generation)
        except BeamopsError as exc:
            self._put(dep.model_copy(update=dict(state=State.FAILED, next_version="",
                                                 state_message=exc.message)))
            self._alerts.fire(f"{dep.name}/failed", AlertKind.DEPLOYMENT_FAILED, Severity.CRITICAL,
                              f"{dep.name}: deploying {resolved.version} failed: {exc.message}",
                              deployment=dep.name, model=dep.model, version=resolved.version)
            raise
        dep = self._put(dep.model_copy(update=dict(
            state=State.READY, current=served, next_version="", state_message="",
            serving_since=utcnow())))
        # Deploy returns once the gateway serves it: a Predict right after it is answered.
        if not await self._routes.in_use(GATEWAY_SYNC_TIMEOUT_S):
            log.warning("the gateway did not take the route of %s within %.0f s", dep.name,
                        GATEWAY_SYNC_TIMEOUT_S)
        self._alerts.resolve(f"{dep.name}/failed")
        return dep

    async def _switch(self, dep: Deployment, resolved: ResolvedVersion, caller: Caller,
                      reason: str) -> None:
        """Loads ``resolved`` next to the served version, switches traffic, unloads the old one
        (the caller recorded the change: ``_audit``)."""
        old = dep.current
        if old is None:  # nothing served yet: a plain load
            await self._first_load(dep, resolved, caller, reason)
            return
        generation = self._free_generation(dep, resolved.version)
        dep = self._put(dep.model_copy(update=dict(
            state=State.SWITCHING, next_version=resolved.version, generation=max(dep.generation, generation),
            state_message=f"loading {resolved.version} next to {old.version}")))
        try:
            served = await self._prepare(dep, resolved, caller.auth, generation)
        except BeamopsError as exc:
            self._put(dep.model_copy(update=dict(
                state=State.READY, next_version="",
                state_message=f"switch to {resolved.version} failed: {exc.message}")))
            self._alerts.fire(f"{dep.name}/switch", AlertKind.DEPLOYMENT_FAILED, Severity.WARNING,
                              f"{dep.name}: switch to {resolved.version} failed, still serving "
                              f"{old.version}: {exc.message}", deployment=dep.name,
                              model=dep.model, version=old.version)
            raise
        self._put(dep.model_copy(update=dict(
            state=State.READY, current=served, previous=old, next_version="", state_message="",
            serving_since=utcnow(), changed_by=caller.name, change_reason=reason)))
        self._alerts.resolve(f"{dep.name}/switch")
        self._drift.resolve_alerts(dep.name)
        if old.triton_name != served.triton_name:
            await self._retire(old.triton_name)

    async def _retire(self, triton_model: str) -> None:
        """Waits until the gateway no longer routes to ``triton_model``, then unloads it (a
        request still in flight there is retried by the gateway on the new route)."""
        if not await self._routes.in_use(GATEWAY_SYNC_TIMEOUT_S):
            log.warning("the gateway did not take the new routes within %.0f s; unloading %s "
                        "anyway (its requests there are retried on the new route)",
                        GATEWAY_SYNC_TIMEOUT_S, triton_model)
        try:
            await self._backend.unload(triton_model)
        except BeamopsError as exc:
            log.warning("unloading %s: %s", triton_model, exc)
        self._repository.remove(triton_model)

    async def _audit(self, action: str, name: str, model: str, reason: str, caller: Caller,
                     **details: str) -> None:
        """Records ``action`` of deployment ``name`` in the registry's audit log, before the change
        is made (no audit, no change); raises, naming what was refused, if the registry refuses
        it (PERMISSION_DENIED: the caller may not change this model) or cannot write it."""
        # The registry takes the actor from the token sent (caller.auth), never from the details
        # ("by", "actor" are refused there): a switch made for an alias move is recorded by this
        # service's own token, and who moved the alias is in the registry's alias.move event.
        try:
            await self._registry.record_audit(
                action, model, f"deployments/{name}", reason,
                {k: str(v) for k, v in details.items() if v} | {"deployment": name}, caller.auth)
        except BeamopsError as exc:
            said = exc.message.removeprefix("registry: ")
            if isinstance(exc, PermissionDenied):
                said = f"the registry refused it: {said}"
            elif isinstance(exc, Unavailable):
                said = f"every change is first recorded in the registry's audit log, and {said}"
            refused = type(exc)(f"{CHANGES[action]} {name!r} refused, nothing was changed: {said}",
                                **{**exc.metadata, "deployment": name, "model": model})
            if isinstance(exc, InvalidArgument):
                refused.field = exc.field
            log.warning("%s of %s not made: its audit record was not written: %s", action, name, said)
            raise refused from None

    async def _restore_all(self) -> None:
        for dep in list(self._deployments.values()):
            try:
                await self._restore(dep)
            except Exception as exc:  # noqa: BLE001 - restore the others
                log.error("restoring deployment %s failed: %s", dep.name, exc)

    async def _restore(self, dep: Deployment) -> None:
        async with self._lock(dep.name):
            if dep.state == State.UNLOADING:
                self._deployments.pop(dep.name, None)
                self._refresh_routes()
                self._store.delete_deployment(dep.name)
                if dep.current:
                    self._repository.remove(dep.current.triton_name)
                return
            if dep.current is None:
                if dep.state != State.FAILED:
                    self._put(dep.model_copy(update=dict(
                        state=State.FAILED, next_version="",
                        state_message="the service restarted before the first version was "
                                      "loaded; deploy again")))
                return
            auth = self._options.service_auth
            try:
                await self._ensure_entry(dep, dep.current, auth)
                await self._backend.load(dep.current.triton_name)
            except (BeamopsError, DataLoss) as exc:
                self._put(dep.model_copy(update=dict(
                    state=State.FAILED, state_message=f"restoring {dep.current.version} after a "
                    f"restart failed: {exc.message}")))
                self._alerts.fire(f"{dep.name}/failed", AlertKind.DEPLOYMENT_FAILED,
                                  Severity.CRITICAL, f"{dep.name}: restore failed: {exc.message}",
                                  deployment=dep.name, model=dep.model, version=dep.current.version)
                return
            self._put(dep.model_copy(update=dict(state=State.READY, next_version="",
                                                 state_message="")))
            self._alerts.resolve(f"{dep.name}/failed")
            for name in self._repository.names():  # leftovers of a switch cut short
                if is_triton_name_of(name, dep.name) and name != dep.current.triton_name:
                    self._repository.remove(name)


def _validate(cmd: DeployCommand, name: str) -> None:
    if not cmd.model:
        raise InvalidArgument("model is required", field="model")
    check_name(cmd.model, "model name", field="model")
    # The name rule of every resource kind (beamops.runtime.names); a name defaulted from the
    # model's is the model's name, case and all ("JetTagger").
    check_name(name, "deployment name", field="name")
    if cmd.target is None or not cmd.target.value:
        raise InvalidArgument("target is required: a parameters version, an alias, or a global "
                              "tag and run", field="target")
    s = cmd.serving
    if s.max_batch_size < 0 or s.instance_count < 0 or s.instance_count > 16:
        raise InvalidArgument("serving: max_batch_size must be >= 0 and instance_count 0..16",
                              field="serving")
    limit = s.max_batch_size
    for size in s.preferred_batch_sizes:
        if size <= 0 or (limit and size > limit):
            raise InvalidArgument(f"serving: preferred batch size {size} must be in 1..max_batch_size",
                                  field="serving.dynamic_batching.preferred_batch_sizes")
    if s.max_queue_delay_us is not None and not 0 <= s.max_queue_delay_us <= 1_000_000:
        raise InvalidArgument("serving: max_queue_delay must be between 0 and 1 s",
                              field="serving.dynamic_batching.max_queue_delay")
    t = cmd.thresholds
    if t.psi < 0 or not 0 <= t.ks_statistic <= 1 or not 0 < t.window_size <= 1_000_000 \
            or t.min_samples < 0 or t.evaluation_interval_s < 1:
        raise InvalidArgument("drift_thresholds: psi >= 0, ks_statistic in 0..1, window_size "
                              "1..1000000, evaluation_interval >= 1 s", field="drift_thresholds")
