"""Deployments and predictions, from Python.

>>> client.inference.deploy("jet-tagger", alias="production")
>>> p = client.inference.predict("jet-tagger", {"x": np.ones((8, 4), np.float32)})
>>> p.outputs["y"].shape, p.version
((8, 1), '1.2')
>>> client.inference.predict_model("jet-tagger", {"x": np.ones((8, 4), np.float32)}, alias="production").deployment
'jet-tagger'
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from beamops.inference.v1 import deployment_pb2, inference_service_pb2 as pb
from beamops.tensors import from_tensor, to_tensor

from .calls import call, pages
from .types import Deployment, DriftReport, Prediction


def _target(version: str | None, alias: str | None, global_tag: str | None, run: int | None):
    chosen = [x for x in (version, alias, global_tag) if x]
    if len(chosen) > 1:
        raise ValueError("give one of version, alias or global_tag (with run)")
    if global_tag:
        if run is None:
            raise ValueError("a global tag needs a run number")
        return {"global_tag_run": deployment_pb2.GlobalTagRun(global_tag=global_tag, run=run)}
    if alias:
        return {"alias": alias}
    if version:
        return {"parameters_version": version}
    return {}


class InferenceAPI:
    def __init__(self, stub) -> None:
        self._stub = stub

    def deploy(self, model: str, *, version: str | None = None, alias: str | None = None,
               global_tag: str | None = None, run: int | None = None, name: str = "",
               max_batch_size: int = 0, instance_count: int = 0, replace: bool = False,
               reason: str = "") -> Deployment:
        """Deploy a version (or follow an alias, or a global tag for a run); returns when READY."""
        target = _target(version, alias, global_tag, run)
        if not target:
            raise ValueError("say what to deploy: version=..., alias=... or global_tag=... with run=...")
        request = pb.DeployRequest(
            model=model, name=name, target=deployment_pb2.DeploymentTarget(**target),
            serving=deployment_pb2.ServingConfig(max_batch_size=max_batch_size, instance_count=instance_count),
            replace=replace, reason=reason)
        return Deployment.from_proto(call(self._stub.Deploy, request).deployment)

    def undeploy(self, name: str, reason: str = "") -> None:
        call(self._stub.Undeploy, pb.UndeployRequest(name=name, reason=reason))

    def rollback(self, name: str, reason: str = "") -> Deployment:
        """Back to the version served before the last change."""
        return Deployment.from_proto(call(self._stub.Rollback, pb.RollbackRequest(name=name, reason=reason)).deployment)

    def get(self, name: str) -> Deployment:
        return Deployment.from_proto(call(self._stub.GetDeployment, pb.GetDeploymentRequest(name=name)).deployment)

    def list(self, model: str = "", limit: int | None = None) -> list[Deployment]:
        request = pb.ListDeploymentsRequest(model=model, page_size=200)
        return [Deployment.from_proto(d) for d in pages(self._stub.ListDeployments, request, "deployments", limit)]

    def predict(self, deployment: str, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None,
                timeout: float | None = None) -> Prediction:
        """Run a deployment on numpy inputs (name -> array); returns numpy outputs by name."""
        request = pb.PredictRequest(
            deployment=deployment, inputs=[to_tensor(n, a) for n, a in inputs.items()],
            output_names=list(outputs or []))
        return self._predict(request, timeout)

    def predict_model(self, model: str, inputs: Mapping[str, np.ndarray], *, version: str | None = None,
                      alias: str | None = None, run: int | None = None, global_tag: str = "",
                      outputs: list[str] | None = None, timeout: float | None = None) -> Prediction:
        """Run a model by version, alias or run number (with the global tag its deployments
        follow, or ``global_tag``); the service picks the deployment, named in the answer."""
        if sum(x is not None for x in (version, alias, run)) > 1:
            raise ValueError("give at most one of version, alias or run")
        if global_tag and run is None:
            raise ValueError("a global tag needs a run number")
        selector = deployment_pb2.ModelSelector(model=model)
        if version is not None:
            selector.parameters_version = version
        elif alias is not None:
            selector.alias = alias
        elif run is not None:
            selector.global_tag_run.CopyFrom(deployment_pb2.GlobalTagRun(global_tag=global_tag, run=run))
        request = pb.PredictRequest(model=selector, inputs=[to_tensor(n, a) for n, a in inputs.items()],
                                    output_names=list(outputs or []))
        return self._predict(request, timeout)

    def _predict(self, request: pb.PredictRequest, timeout: float | None) -> Prediction:
        reply = call(self._stub.Predict, request, timeout=timeout)
        return Prediction(
            outputs={t.name: from_tensor(t) for t in reply.outputs}, deployment=reply.deployment,
            model=reply.parameters.model, version=reply.parameters.version)

    def drift(self, deployment: str) -> DriftReport:
        """Per-feature PSI and KS against the training data; unavailable (not zero) without reference."""
        reply = call(self._stub.GetDriftReport, pb.GetDriftReportRequest(deployment=deployment))
        return DriftReport.from_proto(reply.report)
