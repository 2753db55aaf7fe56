"""Drift: inputs like the training data raise no alert; shifted inputs raise one on WatchAlerts
(and in ListAlerts); a version without reference distributions reports drift unavailable."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2

from beamops.inference.v1 import deployment_pb2 as dpb, inference_service_pb2 as pb
from beamops.tensors import to_tensor
from tests.fixtures.inference import N_FEATURES, mlp_onnx, standard_normal_references
from tests.fixtures.registry import assert_clear

THRESHOLDS = dpb.DriftThresholds(window_size=1000, min_samples=500,
                                 evaluation_interval=duration_pb2.Duration(seconds=1))


async def _send(stub, md, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 50):
        await stub.Predict(pb.PredictRequest(deployment="jets",
                                             inputs=[to_tensor("x", rows[start:start + 50])]),
                           metadata=md)


async def _report_once(stub, md, done):
    """The drift report once ``done(report)`` holds (the gateway hands samples over about once a
    second); the last one read otherwise."""
    for _ in range(200):
        report = (await stub.GetDriftReport(pb.GetDriftReportRequest(deployment="jets"), metadata=md)).report
        if done(report):
            break
        await asyncio.sleep(0.1)
    return report


async def test_drifted_inputs_raise_an_alert_and_undrifted_do_not(inference_stack, via):
    stack = inference_stack
    await stack.publish("jets", mlp_onnx(), alias="production",
                        references=standard_normal_references())
    rng = np.random.default_rng(11)
    async with stack.inference(via) as (server, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production"),
                                           drift_thresholds=THRESHOLDS), metadata=stack.md("deployer"))
        watch = stub.WatchAlerts(pb.WatchAlertsRequest(deployment="jets"), metadata=stack.md("reader"))

        await _send(stub, stack.md("reader"), rng.normal(size=(1000, N_FEATURES)).astype(np.float32))
        report = await _report_once(stub, stack.md("reader"), lambda r: r.window_samples >= 1000)
        inputs = [f for f in report.features if f.kind == dpb.FEATURE_KIND_INPUT]
        assert report.available and not report.drifting and report.window_samples == 1000
        assert len(inputs) == N_FEATURES and all(f.available for f in inputs)
        assert [f.feature for f in inputs] == [f"feature_{i}" for i in range(N_FEATURES)]
        assert all(f.psi < 0.2 and f.ks_statistic < 0.1 for f in inputs)
        # Outputs have no reference here: reported unavailable, not zero.
        outputs = [f for f in report.features if f.kind == dpb.FEATURE_KIND_OUTPUT]
        assert outputs and not any(f.available for f in outputs)
        assert all("no reference" in f.unavailable_reason for f in outputs)

        shifted = rng.normal(size=(1000, N_FEATURES)).astype(np.float32)
        shifted[:, 2] += 1.5
        await _send(stub, stack.md("reader"), shifted)
        alert = (await asyncio.wait_for(watch.read(), timeout=60)).alert
        watch.cancel()
        assert alert.kind == dpb.ALERT_KIND_DRIFT and alert.state == dpb.ALERT_STATE_FIRING
        assert alert.feature_drift.tensor == "x" and alert.feature_drift.index == 2
        assert "x[2]" in alert.summary and alert.feature_drift.psi > 0.2
        report = (await stub.GetDriftReport(pb.GetDriftReportRequest(deployment="jets"),
                                            metadata=stack.md("reader"))).report
        assert report.drifting
        exceeded = {f.index for f in report.features if f.psi_exceeded or f.ks_exceeded}
        assert exceeded == {2}
        listed = (await stub.ListAlerts(pb.ListAlertsRequest(deployment="jets"),
                                        metadata=stack.md("reader"))).alerts
        assert [a.alert_id for a in listed] == [alert.alert_id]
        assert server.metrics.get_sample_value(
            "beamops_inference_alerts_fired_total", {"deployment": "jets", "kind": "DRIFT"}) == 1


async def test_drift_unavailable_without_reference(inference_stack):
    stack = inference_stack
    params = await stack.publish("jets", mlp_onnx(), alias="production")
    async with stack.inference() as (_, stub):
        await stub.Deploy(pb.DeployRequest(model="jets", target=dpb.DeploymentTarget(alias="production")),
                          metadata=stack.md("deployer"))
        report = (await stub.GetDriftReport(pb.GetDriftReportRequest(deployment="jets"),
                                            metadata=stack.md("reader"))).report
        assert not report.available and not report.features
        assert "no reference distributions" in report.unavailable_reason
        assert params.version in report.unavailable_reason
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDriftReport(pb.GetDriftReportRequest(deployment="nope"), metadata=stack.md("reader"))
        assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "'nope'")
