"""Adapter to the registry: only its gRPC stubs. Registers a trained model with its lineage.

On success a job's ONNX file is uploaded (UploadArtifact, client stream), the model and the
model type are created when missing (the type's signature is the one the registry read from
the ONNX file), and a parameters version is created with the full lineage, the metrics and the
reference distributions. The job id is the idempotency key, so a retried registration never
creates two versions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import AsyncIterator

import grpc

from beamops.common.v1 import lineage_pb2
from beamops.registry.v1 import model_pb2, registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.errors import InvalidArgument, Unavailable

from .convert import code_ref_to_proto, environment_to_proto
from .data_client import auth_metadata, channel_options
from .failures import RegistrationError
from .spec import PublishTarget, TrainingSpec

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Registered:
    model: str
    version: str
    artifact_id: str
    artifact_sha256: str


class RegistryClient:
    def __init__(self, address: str, max_message_bytes: int = 64 * 1024 * 1024,
                 timeout_s: float = 60.0) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(address, options=channel_options(max_message_bytes))
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(self._channel)
        self._timeout = timeout_s

    async def close(self) -> None:
        await self._channel.close()

    async def check_target(self, publish: PublishTarget, inputs: int, token: str | None) -> None:
        """At submit time: when the model type exists, its input width must match the features."""
        try:
            response = await self._stub.GetModelType(
                rs.GetModelTypeRequest(model=publish.model, version=publish.model_type_version),
                metadata=auth_metadata(token), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return  # created when the job registers its result
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"the registry refused the publish target: {exc.details()}",
                                      field="spec.publish.model_type") from None
            raise Unavailable(f"the registry could not be asked about model type {publish.model} "
                              f"{publish.model_type_version} ({exc.code().name}); try again") from None
        for tensor in response.model_type.signature.inputs:
            shape = list(tensor.shape)
            if len(shape) == 2 and shape[1] > 0 and shape[1] != inputs:
                raise InvalidArgument(
                    f"model type {publish.model} {publish.model_type_version} takes {shape[1]} inputs "
                    f"but the feature branches give {inputs}; publish to a new model type version",
                    field="spec.feature_branches")

    async def register(self, job_id: str, spec: TrainingSpec, result: dict, onnx: bytes,
                       token: str | None) -> Registered:
        publish = spec.publish
        assert publish is not None
        md = auth_metadata(token)
        try:
            await self._ensure_model(publish, job_id, md)
            artifact = await self._upload(publish.model, job_id, onnx, md)
            await self._ensure_model_type(publish, artifact, result, job_id, md)
            response = await self._stub.CreateParametersVersion(
                _parameters_request(job_id, spec, result, artifact.artifact_id), metadata=md,
                timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise RegistrationError(f"the registry answered {exc.code().name}: {exc.details()}") from None
        return Registered(publish.model, response.parameters.version, artifact.artifact_id, artifact.sha256)

    async def _ensure_model(self, publish: PublishTarget, job_id: str, md) -> None:
        try:
            await self._stub.GetModel(rs.GetModelRequest(name=publish.model), metadata=md, timeout=self._timeout)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        try:
            await self._stub.CreateModel(rs.CreateModelRequest(
                name=publish.model, description=publish.description or "trained by the beamops training service",
                reason=f"training job {job_id}"), metadata=md, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise

    async def _upload(self, model: str, job_id: str, onnx: bytes, md) -> model_pb2.Artifact:
        async def parts() -> AsyncIterator[rs.UploadArtifactRequest]:
            yield rs.UploadArtifactRequest(header=rs.UploadArtifactRequest.Header(
                model=model, format=model_pb2.ARTIFACT_FORMAT_ONNX, filename=f"{job_id}.onnx",
                sha256=hashlib.sha256(onnx).hexdigest(), size_bytes=len(onnx)))
            for start in range(0, len(onnx), CHUNK):
                yield rs.UploadArtifactRequest(chunk=onnx[start:start + CHUNK])

        response = await self._stub.UploadArtifact(parts(), metadata=md, timeout=self._timeout)
        return response.artifact

    async def _ensure_model_type(self, publish: PublishTarget, artifact: model_pb2.Artifact, result: dict,
                                 job_id: str, md) -> None:
        try:
            await self._stub.GetModelType(rs.GetModelTypeRequest(
                model=publish.model, version=publish.model_type_version), metadata=md, timeout=self._timeout)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        try:
            await self._stub.CreateModelType(rs.CreateModelTypeRequest(
                model=publish.model, version=publish.model_type_version, signature=artifact.signature,
                framework=model_pb2.FRAMEWORK_ONNX, code=code_ref_to_proto(result.get("code", {})),
                description=f"{result.get('model_kind', '')} on {', '.join(result.get('feature_names', []))}"[:10_000],
                reason=f"created for training job {job_id}"), metadata=md, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


def _parameters_request(job_id: str, spec: TrainingSpec, result: dict, artifact_id: str
                        ) -> rs.CreateParametersVersionRequest:
    publish = spec.publish
    metrics = {}
    for m in result.get("metrics", []):
        key = m["name"] if m["split"] == "test" else f"{m['split']}_{m['name']}"
        metrics[key] = float(m["value"])
    spec_json = spec.to_json()
    tags = {"training_job": job_id, "model_kind": str(result.get("model_kind", ""))[:500],
            "spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest()}
    if len(spec_json) <= 500:
        tags["training_spec"] = spec_json
    search = result.get("search")
    if search:  # the best trial of a hyperparameter search
        tags["search_job"] = job_id
        tags["search_trial"] = str(search["trial_index"])
        tags["search_objective"] = (f"{search['direction']} validation {search['objective_metric']} = "
                                    f"{search['objective_value']:.6g}")
        tags["search_trials"] = f"{search['trials_succeeded']} of {search['trials_total']} succeeded"
    lineage = model_pb2.Lineage(
        datasets=[lineage_pb2.DatasetVersionRef(**d) for d in result.get("datasets", [])],
        training_job=lineage_pb2.JobRef(job_id=job_id),
        hyperparameters={k: json.dumps(v) for k, v in result.get("hyperparameters", {}).items()},
        seed=int(result.get("seed", spec.seed)),
        code=code_ref_to_proto(result.get("code", {})),
        environment=environment_to_proto(result.get("environment", {})),
    )
    return rs.CreateParametersVersionRequest(
        model=publish.model, model_type_version=publish.model_type_version,
        primary_artifact_id=artifact_id, metrics=metrics, lineage=lineage,
        description=publish.description or spec.description or (
            f"best trial ({search['trial_index']}) of {search['algorithm']} search {job_id}" if search else ""),
        tags=tags,
        reference_distributions=[model_pb2.FeatureDistribution(**d)
                                 for d in result.get("reference_distributions", [])],
        idempotency_key=f"training-{job_id}",
        reason=f"registered by training job {job_id}",
    )


__all__ = ["RegistryClient", "Registered", "RegistrationError"]
