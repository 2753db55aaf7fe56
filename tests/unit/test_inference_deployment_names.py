"""Deployment names follow the one name rule: a model "JetTagger" deploys under its own name,
"JetTagger" and "jettagger" are two deployments with two Triton folders that differ even
ignoring case, and restoring one deployment leaves the folders of the others alone."""

from __future__ import annotations

import pytest

from beamops.runtime.errors import InvalidArgument, NotFound
from tests.unit.test_inference_gateway_routes import CALLER, MemoryStore, Registry, deploy, manager


async def test_a_model_with_capitals_deploys_under_its_own_name(tmp_path):
    registry = Registry()
    registry.add("JetTagger", "1.0")
    m = manager(tmp_path, registry)
    dep = await m.deploy(deploy("", "1.0", model="JetTagger"), CALLER)
    assert dep.name == "JetTagger" and dep.model == "JetTagger"
    assert m.get("JetTagger").current.version == "1.0"
    assert dep.current.triton_name.startswith("JetTagger__1_0")
    assert (tmp_path / "models" / dep.current.triton_name / "config.pbtxt").is_file()
    with pytest.raises(NotFound):  # lookups match the case exactly
        m.get("jettagger")


async def test_names_differing_only_in_case_are_two_deployments_with_two_folders(tmp_path):
    registry = Registry()
    registry.add("JetTagger", "1.0")
    m = manager(tmp_path, registry)
    upper = await m.deploy(deploy("JetTagger", "1.0", model="JetTagger"), CALLER)
    lower = await m.deploy(deploy("jettagger", "1.0", model="JetTagger"), CALLER)
    assert [d.name for d in m.list()] == ["JetTagger", "jettagger"]
    folders = [upper.current.triton_name, lower.current.triton_name]
    assert len({f.lower() for f in folders}) == 2  # one folder each on a case-insensitive disk too
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(folders)
    _generation, routes = m.routes()
    assert {r.deployment: r.triton_model for r in routes} == dict(zip(["JetTagger", "jettagger"], folders))


async def test_deployment_names_beyond_the_rule_are_refused_with_the_kind_named(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0")
    m = manager(tmp_path, registry)
    for bad, problem in (("a..b", '".."'), ("x" * 101, "101 characters"), ("Jet Tagger", "U+0020")):
        with pytest.raises(InvalidArgument) as err:
            await m.deploy(deploy(bad, "1.0"), CALLER)
        assert err.value.field == "name" and "deployment name" in err.value.message
        assert problem in err.value.message
    assert m.list() == []
    long = await m.deploy(deploy("J" * 100, "1.0"), CALLER)  # 100 characters, was 63
    assert long.name == "J" * 100


async def test_restoring_a_deployment_keeps_the_folders_of_deployments_named_like_it(tmp_path):
    registry = Registry()
    registry.add("jets", "1.0")
    first = manager(tmp_path, registry)
    for name in ("jets", "jets__v2", "jets__1", "Jets"):
        await first.deploy(deploy(name, "1.0"), CALLER)
    folders = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert len(folders) == 4
    (tmp_path / "models" / "jets__1_0__g7").mkdir()  # a leftover of a switch cut short
    stored = first._store.deployments()
    assert isinstance(first._store, MemoryStore) and stored[0].name == "jets"
    again = manager(tmp_path, registry, deployments=stored[1:] + stored[:1])  # "jets" restored last
    await again._restore_all()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == folders
