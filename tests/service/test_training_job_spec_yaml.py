"""The example YAML job spec (examples/jobs/zmumu_gbt.yaml), loaded with the SDK's load_job_spec,
trains on the real Zmumu events through gRPC and registers the model it names."""

from __future__ import annotations

from pathlib import Path

from beamops.job_spec import load_job_spec
from beamops.registry.v1 import registry_service_pb2 as rs
from beamops.training.v1 import job_pb2

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "zmumu_gbt.yaml"


async def test_the_example_yaml_spec_trains_on_real_zmumu_events_and_registers(training_env):
    env = training_env
    spec = load_job_spec(EXAMPLE)
    split = await env.split_version("zmumu", ["uproot-Zmumu.root"])  # as the file's comment says
    assert spec.dataset.version_id == split.version_id  # content-addressed: the same everywhere
    job, _ = await env.follow((await env.submit(spec)).job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    assert job.executor == job_pb2.EXECUTOR_LOCAL and job.result.seed == 42
    assert {m.name: m.value for m in job.metrics if m.split == "test"}["r2"] > 0.8
    params = (await env.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model="zmumu-mass", version=job.result.parameters.version), metadata=env.md("reader"))).parameters
    assert params.lineage.hyperparameters["max_iter"] == "60"
    assert params.description.startswith("Dimuon mass")
