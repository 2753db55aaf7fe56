"""Usage reported by the gateway moves the series Predict feeds and the drift monitor; usage of
unknown deployments is ignored, samples of a version no longer served are dropped; a malformed
report is refused naming the field."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from beamops.common.v1 import tensor_pb2
from beamops.inference.domain import (
    Deployment, DeploymentUsage, ServedVersion, State, Target, TargetKind, Thresholds,
)
from beamops.inference.gateway import convert as gateway_convert
from beamops.inference.metrics import InferenceMetrics
from beamops.inference.v1 import gateway_service_pb2 as gpb
from beamops.runtime.errors import InvalidArgument
from beamops.tensors import to_tensor

from tests.unit.test_inference_gateway_routes import BATCHED, REFERENCES, manager

SERVED = ServedVersion(version="1.0", signature=BATCHED, triton_name="jets__1_0",
                       references=REFERENCES)


def ready(name: str, thresholds: Thresholds | None = None):
    if thresholds is None:  # a fresh one per call: the model is mutable
        thresholds = Thresholds(window_size=100, min_samples=1)
    return Deployment(name=name, model="jets", target=Target(kind=TargetKind.VERSION, value="1.0"),
                      current=SERVED, state=State.READY, thresholds=thresholds)


def report(deployment="jets", version="1.0", samples=0, **fields) -> gpb.ReportUsageRequest:
    rng = np.random.default_rng(0)
    usage = gpb.DeploymentUsage(deployment=deployment, parameters_version=version, **fields)
    for _ in range(samples):
        usage.samples.add(inputs=[to_tensor("x", rng.normal(size=(3, 4)).astype(np.float32))],
                          outputs=[to_tensor("y", rng.normal(size=(3, 2)).astype(np.float32))])
    return gpb.ReportUsageRequest(deployments=[usage])


def sample(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def with_metrics(tmp_path, *deployments):
    """A manager serving ``deployments``, and the Prometheus registry its metrics are in."""
    metrics, registry = InferenceMetrics(), CollectorRegistry()
    metrics.register_into(registry)
    return manager(tmp_path, deployments=deployments, metrics=metrics), registry


def test_usage_moves_the_predict_series(tmp_path):
    m, reg = with_metrics(tmp_path, ready("jets"))
    m.record_usage(gateway_convert.usage(report(
        requests=5, errors={"INVALID_ARGUMENT": 2, "UNAVAILABLE": 1},
        latency_seconds=[0.001, 0.002, 0.004], batch_rows=[1, 3, 8])))
    assert sample(reg, "beamops_inference_requests_total", deployment="jets", version="1.0") == 5
    assert sample(reg, "beamops_inference_errors_total", deployment="jets", code="INVALID_ARGUMENT") == 2
    assert sample(reg, "beamops_inference_errors_total", deployment="jets", code="UNAVAILABLE") == 1
    assert sample(reg, "beamops_inference_latency_seconds_count", deployment="jets") == 3
    assert sample(reg, "beamops_inference_latency_seconds_sum", deployment="jets") == pytest.approx(0.007)
    assert sample(reg, "beamops_inference_batch_size_count", deployment="jets") == 3
    assert sample(reg, "beamops_inference_batch_size_sum", deployment="jets") == 12

    m.record_usage(gateway_convert.usage(report(requests=2)))  # a second report adds up
    assert sample(reg, "beamops_inference_requests_total", deployment="jets", version="1.0") == 7


def test_samples_reach_the_drift_monitor_of_the_served_version(tmp_path):
    m, reg = with_metrics(tmp_path, ready("jets"))
    m.record_usage(gateway_convert.usage(report(requests=4, samples=4)))
    drift = m.drift_report("jets")
    assert drift.available and drift.window_samples == 12  # 4 samples of 3 rows
    assert all(f.sample_count == 12 for f in drift.features if f.tensor == "x")

    # Samples of a version the deployment no longer serves: dropped, but still counted.
    m.record_usage(gateway_convert.usage(report(version="0.9", requests=3, samples=2)))
    assert m.drift_report("jets").window_samples == 12
    assert sample(reg, "beamops_inference_requests_total", deployment="jets", version="0.9") == 3


def test_samples_are_not_kept_when_the_deployment_does_not_watch_drift(tmp_path):
    m = manager(tmp_path, deployments=[ready("jets", Thresholds(disabled=True))])
    m.record_usage(gateway_convert.usage(report(requests=1, samples=3)))
    drift = m.drift_report("jets")
    assert not drift.available and drift.window_samples == 0
    assert "disabled" in drift.unavailable_reason


def test_usage_of_an_unknown_deployment_is_ignored(tmp_path):
    m, reg = with_metrics(tmp_path, ready("jets"))
    m.record_usage(gateway_convert.usage(report(deployment="gone", requests=5,
                                                errors={"UNAVAILABLE": 1}, samples=1)))
    assert sample(reg, "beamops_inference_requests_total", deployment="gone", version="1.0") == 0
    assert sample(reg, "beamops_inference_errors_total", deployment="gone", code="UNAVAILABLE") == 0
    assert [d.name for d in m.list()] == ["jets"]


def test_convert_keeps_every_field():
    usage = gateway_convert.usage(report(requests=2, errors={"UNAVAILABLE": 1},
                                         latency_seconds=[0.5], batch_rows=[3], samples=1))
    assert len(usage) == 1
    u = usage[0]
    assert isinstance(u, DeploymentUsage)
    assert (u.deployment, u.version, u.requests, u.errors) == ("jets", "1.0", 2, (("UNAVAILABLE", 1),))
    assert u.latency_s == (0.5,) and u.batch_rows == (3,)
    (s,) = u.samples
    assert [t.name for t in s.inputs] == ["x"] and s.inputs[0].shape == (3, 4)
    assert s.outputs[0].dtype == tensor_pb2.DATA_TYPE_FLOAT32 and len(s.outputs[0].data) == 24


def test_a_malformed_report_is_refused_naming_the_field():
    bad = report(samples=1)
    bad.deployments[0].samples[0].inputs[0].raw_data = b"\x00" * 5
    with pytest.raises(InvalidArgument) as error:
        gateway_convert.usage(bad)
    assert error.value.field == "deployments[0].samples[0].inputs[0]"
    assert "needs 48 bytes, got 5" in error.value.message

    with pytest.raises(InvalidArgument) as error:
        gateway_convert.usage(report(errors={"not a reason": 1}))
    assert error.value.field == "deployments[0].errors"
