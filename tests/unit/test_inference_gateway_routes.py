"""The gateway's route table: which deployments appear, with what max batch and drift flag, and a
generation that grows exactly when the table changes (deploy, switch, failure, undeploy)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from beamops.common.v1 import tensor_pb2
from beamops.inference.alerts import AlertBook
from beamops.inference.control.deployments import DeploymentManager, Options
from beamops.inference.domain import (
    Caller, DeployCommand, Deployment, FeatureReference, GatewayRoute, ResolvedVersion, ServedVersion,
    ServingConfig, Signature, State, Target, TargetKind, TensorSig, Thresholds,
)
from beamops.inference.gateway.routes import RouteTable, route_for
from beamops.inference.metrics import InferenceMetrics
from beamops.inference.triton.repository import ModelRepository
from beamops.runtime.errors import FailedPrecondition

F32 = tensor_pb2.DATA_TYPE_FLOAT32
BATCHED = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(-1, 4)),),
                    outputs=(TensorSig(name="y", dtype=F32, shape=(-1, 2)),))
FIXED = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(1, 4)),),
                  outputs=(TensorSig(name="y", dtype=F32, shape=(1, 2)),))
REFERENCES = tuple(FeatureReference(feature=f"f{i}", bin_edges=(0.0, 1.0, 2.0), counts=(5.0, 5.0),
                                    count=10) for i in range(4))
CALLER = Caller("deployer-user", None)


class MemoryStore:
    def __init__(self, deployments=()) -> None:
        self.saved = {d.name: d for d in deployments}

    def save_deployment(self, deployment):
        self.saved[deployment.name] = deployment

    def delete_deployment(self, name):
        self.saved.pop(name, None)

    def deployments(self):
        return list(self.saved.values())

    def save_alert(self, alert):
        pass

    def alerts(self):
        return []


class Registry:
    """Versions by (model, version); every version has an artifact and a signature."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], ResolvedVersion] = {}

    def add(self, model, version, signature=BATCHED, references=()):
        self.versions[(model, version)] = ResolvedVersion(
            model=model, version=version, artifact_id=f"a-{model}-{version}", sha256="",
            signature=signature, references=references)

    async def get_version(self, model, version, auth):
        return self.versions[(model, version)]

    async def download(self, artifact_id, sha256, auth):
        return b"onnx bytes"

    async def record_audit(self, *args):
        pass


class Backend:
    """Loads succeed unless the Triton name is in ``failing``."""

    infer_timeout_s = 30.0

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.failing: set[str] = set()
        self.unloaded: list[str] = []

    async def load(self, name):
        if name in self.failing:
            raise FailedPrecondition("bad model")
        self.loaded.add(name)

    async def is_model_ready(self, name):
        return name in self.loaded

    async def unload(self, name):
        self.loaded.discard(name)
        self.unloaded.append(name)


def manager(tmp_path: Path, registry=None, backend=None, deployments=(),
            metrics: InferenceMetrics | None = None) -> DeploymentManager:
    store = MemoryStore(deployments)
    metrics = metrics or InferenceMetrics()
    return DeploymentManager(store, registry or Registry(), backend or Backend(),
                             ModelRepository(tmp_path / "models", "python"),
                             AlertBook(store, metrics), metrics, Options(default_max_batch_size=64))


def deploy(name, version, model="jets", **kw) -> DeployCommand:
    return DeployCommand(model=model, name=name,
                         target=Target(kind=TargetKind.VERSION, value=version), **kw)


def by_name(routes):
    return {r.deployment: r for r in routes}


async def test_deployments_appear_with_their_version_model_and_max_batch(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0")
    registry.add("fixed", "1.0", signature=FIXED)
    m = manager(tmp_path, registry)
    start, routes = m.routes()
    assert routes == ()

    await m.deploy(deploy("jets", "1.0"), CALLER)
    await m.deploy(deploy("jets-small", "1.0", serving=ServingConfig(max_batch_size=8)), CALLER)
    await m.deploy(deploy("fixed", "1.0", model="fixed"), CALLER)
    generation, routes = m.routes()
    assert generation > start
    routes = by_name(routes)
    assert sorted(routes) == ["fixed", "jets", "jets-small"]
    jets = routes["jets"]
    assert (jets.model, jets.parameters_version, jets.triton_model) == ("jets", "1.0", "jets__1_0")
    assert jets.signature == BATCHED
    assert jets.max_batch_size == 64  # the default, as _plan computes it
    assert routes["jets-small"].max_batch_size == 8
    assert routes["fixed"].max_batch_size == 0  # no variable first dimension: Triton does not batch
    assert not jets.drift  # no reference distributions


async def test_drift_flag_follows_the_deployments_monitor(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0", references=REFERENCES)
    m = manager(tmp_path, registry)
    await m.deploy(deploy("watched", "1.0"), CALLER)
    await m.deploy(deploy("unwatched", "1.0", thresholds=Thresholds(disabled=True)), CALLER)
    routes = by_name(m.routes()[1])
    assert routes["watched"].drift is True
    assert routes["unwatched"].drift is False


async def test_generation_grows_on_switch_and_undeploy_and_wakes_watchers(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0")
    registry.add("jets", "1.1")
    m = manager(tmp_path, registry)
    await m.deploy(deploy("jets", "1.0"), CALLER)
    generation, _ = m.routes()
    assert m.routes()[0] == generation  # nothing changed: same generation

    waiter = asyncio.create_task(m.routes_changed(generation))
    await asyncio.sleep(0)
    assert not waiter.done()
    await m.deploy(deploy("jets", "1.1", replace=True), CALLER)
    switched = await asyncio.wait_for(waiter, 5)
    assert switched > generation
    route = by_name(m.routes()[1])["jets"]
    assert route.parameters_version == "1.1" and route.triton_model.startswith("jets__1_1")

    await m.rollback("jets", "", "back", CALLER)
    rolled_back, routes = m.routes()
    assert rolled_back > switched and by_name(routes)["jets"].parameters_version == "1.0"

    await m.undeploy("jets", "gone", CALLER)
    removed, routes = m.routes()
    assert removed > rolled_back and routes == ()
    assert await asyncio.wait_for(m.routes_changed(rolled_back), 5) == removed


async def test_a_failed_deployment_has_no_route(tmp_path):
    registry, backend = Registry(), Backend()
    registry.add("jets", "1.0")
    backend.failing.add("jets__1_0")
    m = manager(tmp_path, registry, backend)
    before = m.routes()[0]
    with pytest.raises(FailedPrecondition):
        await m.deploy(deploy("jets", "1.0"), CALLER)
    assert m.get("jets").state == State.FAILED
    generation, routes = m.routes()
    assert routes == () and generation == before  # LOADING then FAILED: never served


def test_stored_deployments_are_routed_from_the_start(tmp_path):
    served = ServedVersion(version="2.0", signature=BATCHED, triton_name="jets__2_0")
    stored = [
        Deployment(name="jets", model="jets", target=Target(kind=TargetKind.VERSION, value="2.0"),
                   current=served, state=State.READY),
        Deployment(name="loading", model="jets", target=Target(kind=TargetKind.VERSION, value="2.0"),
                   state=State.LOADING),
        Deployment(name="broken", model="jets", target=Target(kind=TargetKind.VERSION, value="2.0"),
                   current=served, state=State.FAILED),
    ]
    routes = by_name(manager(tmp_path, deployments=stored).routes()[1])
    assert list(routes) == ["jets"] and routes["jets"].triton_model == "jets__2_0"


def test_route_for_serves_exactly_what_predict_serves():
    served = ServedVersion(version="1.0", signature=BATCHED, triton_name="t")
    dep = Deployment(name="d", model="m", target=Target(kind=TargetKind.VERSION, value="1.0"),
                     current=served)
    for state, routed in [(State.READY, True), (State.SWITCHING, True), (State.LOADING, False),
                          (State.PENDING, False), (State.FAILED, False), (State.UNLOADING, False)]:
        assert (route_for(dep.model_copy(update=dict(state=state)), 64, False) is not None) == routed
    assert route_for(dep.model_copy(update=dict(state=State.READY, current=None)), 64, False) is None


async def test_route_table_generation_starts_high_and_grows_by_one_per_change():
    table = RouteTable(start_generation=10)
    route = route_for(Deployment(name="d", model="m", current=ServedVersion(version="1.0",
                      signature=BATCHED, triton_name="t"), state=State.READY,
                      target=Target(kind=TargetKind.VERSION, value="1.0")), 64, False)
    assert table.update([route]) is True and table.generation == 11
    assert table.update([route]) is False and table.generation == 11
    assert await table.changed(10) == 11
    assert table.update([]) is True and table.snapshot() == (12, ())
    assert RouteTable().generation > 1_600_000_000_000  # ms since the epoch: grows across restarts


async def test_a_switch_unloads_the_old_version_only_once_the_gateway_serves_the_new_routes(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0")
    registry.add("jets", "1.1")
    backend = Backend()
    m = manager(tmp_path, registry, backend)
    await m.deploy(deploy("jets", "1.0"), CALLER)
    unloaded = backend.unloaded
    with m.gateway_watching():  # a gateway follows the table
        m.gateway_applied(m.routes()[0])
        switch = asyncio.create_task(m.deploy(deploy("jets", "1.1", replace=True), CALLER))
        generation = await asyncio.wait_for(m.routes_changed(m.routes()[0]), 5)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not switch.done() and unloaded == []  # the gateway may still send to 1.0
        m.gateway_applied(generation - 1)  # an older table: still waiting
        for _ in range(20):
            await asyncio.sleep(0)
        assert not switch.done()
        m.gateway_applied(generation)
        await asyncio.wait_for(switch, 5)
        assert unloaded == ["jets__1_0"]
    # Nobody follows the table: nothing to wait for.
    await asyncio.wait_for(m.rollback("jets", "", "back", CALLER), 5)


def route_for_test():
    return GatewayRoute(deployment="jets", model="jets", parameters_version="1.0",
                        triton_model="jets__1_0", signature=BATCHED, max_batch_size=64, drift=False)


async def test_route_table_waits_for_gateways_with_a_time_limit():
    table = RouteTable(start_generation=1)
    assert await table.in_use(0.01)  # no gateway follows it
    table.watchers = 1
    table.update([])  # same content: no new generation
    table.applied(1)
    assert await table.in_use(0.01)
    table.update([route_for_test()])
    assert not await table.in_use(0.01)  # the gateway never took generation 2
    table.applied(2)
    assert await table.in_use(0.01)


def test_a_route_names_the_alias_its_deployment_follows():
    served = ServedVersion(version="1.0", signature=BATCHED, triton_name="t")
    pinned = Deployment(name="d", model="m", target=Target(kind=TargetKind.VERSION, value="1.0"),
                        current=served, state=State.READY)
    following = pinned.model_copy(update=dict(
        target=Target(kind=TargetKind.ALIAS, value="production"), following_alias=True))
    assert route_for(pinned, 64, False).following_alias == ""
    assert route_for(following, 64, False).following_alias == "production"
    # Pinned to a version after a rollback: the alias is no longer followed.
    rolled_back = following.model_copy(update=dict(following_alias=False))
    assert route_for(rolled_back, 64, False).following_alias == ""
