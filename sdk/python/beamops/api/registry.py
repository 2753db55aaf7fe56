"""The registry, from Python: models, parameters versions, aliases, intervals of validity, audit.

>>> client = beamops.Client()
>>> v = client.registry.publish_onnx("jet-tagger", "model.onnx", model_type_version="1.0.0",
...                                  metrics={"auc": 0.93})
>>> client.registry.set_alias("jet-tagger", "production", v.version, reason="better AUC")
>>> client.registry.resolve_alias("jet-tagger", "production").version
'1.0'
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Iterator, Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from beamops.common.v1 import auth_pb2
from beamops.errors import AlreadyExistsError, NotFoundError
from beamops.registry.v1 import iov_pb2, model_pb2, registry_service_pb2 as pb

from .calls import call, pages, stream
from .types import AliasMove, AuditEvent, IovEntry, Model, ParametersVersion

CHUNK = 1024 * 1024
IOV_KINDS = {"run": iov_pb2.IOV_KIND_RUN, "timestamp": iov_pb2.IOV_KIND_TIMESTAMP,
             "run_lumi": iov_pb2.IOV_KIND_RUN_LUMI}


def _stamp(when: datetime) -> Timestamp:
    """A Timestamp of ``when`` (a naive datetime is taken as UTC)."""
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def to_onnx(estimator, n_features: int | None = None, example_input=None) -> bytes:
    """ONNX bytes of an in-memory model (scikit-learn, XGBoost, or PyTorch when installed)."""
    if type(estimator).__module__.startswith("torch") or hasattr(estimator, "state_dict"):
        import io

        import torch

        if example_input is None:
            raise ValueError("a PyTorch model needs example_input (a tensor of the input's shape)")
        buffer = io.BytesIO()
        torch.onnx.export(estimator, example_input, buffer, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        return buffer.getvalue()
    if hasattr(estimator, "fit") and hasattr(estimator, "predict"):
        from beamops.onnx_export import sklearn_to_onnx, xgboost_to_onnx

        if n_features is None:
            n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:
            raise ValueError("say how many input features the model takes: n_features=...")
        if type(estimator).__module__.startswith("xgboost"):
            return xgboost_to_onnx(estimator, int(n_features))
        return sklearn_to_onnx(estimator, int(n_features))
    raise TypeError(f"cannot export a {type(estimator).__name__} to ONNX: give a scikit-learn "
                    "estimator or pipeline, an XGBoost model, a PyTorch module, or publish an ONNX file")


class RegistryAPI:
    def __init__(self, stub) -> None:
        self._stub = stub

    # models -------------------------------------------------------------------------------
    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None,
                     exist_ok: bool = False) -> Model:
        try:
            reply = call(self._stub.CreateModel, pb.CreateModelRequest(
                name=name, description=description, tags=dict(tags or {})))
            return Model.from_proto(reply.model)
        except AlreadyExistsError:
            if not exist_ok:
                raise
            return self.get_model(name)

    def get_model(self, name: str) -> Model:
        return Model.from_proto(call(self._stub.GetModel, pb.GetModelRequest(name=name)).model)

    def list_models(self, name_prefix: str = "", limit: int | None = None) -> list[Model]:
        request = pb.ListModelsRequest(name_prefix=name_prefix, page_size=200)
        return [Model.from_proto(m) for m in pages(self._stub.ListModels, request, "models", limit)]

    def restrict(self, model: str, restricted: bool = True, reason: str = "") -> Model:
        """Restricted models are changed only by their owner, admins and principals granted a role."""
        reply = call(self._stub.UpdateModel, pb.UpdateModelRequest(
            name=model, restricted=restricted, reason=reason, **self._unchanged(model)))
        return Model.from_proto(reply.model)

    def grant(self, model: str, principal: str, role: str, reason: str = "") -> None:
        """Let ``principal`` change ``model`` up to ``role`` (owner or admin only)."""
        call(self._stub.SetModelPermission, pb.SetModelPermissionRequest(
            model=model, principal=principal, role=auth_pb2.Role.Value(f"ROLE_{role.upper()}"), reason=reason))

    def revoke(self, model: str, principal: str, reason: str = "") -> None:
        call(self._stub.RemoveModelPermission, pb.RemoveModelPermissionRequest(
            model=model, principal=principal, reason=reason))

    def permissions(self, model: str) -> list[dict]:
        """Grants on a model: principal, role, granted by, when."""
        request = pb.ListModelPermissionsRequest(model=model, page_size=200)
        return [{"principal": p.principal, "role": auth_pb2.Role.Name(p.role).removeprefix("ROLE_").lower(),
                 "granted_by": p.granted_by} for p in pages(self._stub.ListModelPermissions, request, "permissions")]

    # tokens (admins) -----------------------------------------------------------------------
    def create_token(self, name: str, role: str, reason: str = "") -> str:
        """A bearer token for ``name`` with ``role`` (reader, publisher, deployer, admin); shown once."""
        return call(self._stub.CreateToken, pb.CreateTokenRequest(
            name=name, role=auth_pb2.Role.Value(f"ROLE_{role.upper()}"), reason=reason)).token

    def revoke_token(self, name: str, reason: str = "") -> None:
        """Revoke ``name``'s token: it stops working on every service on its next call."""
        call(self._stub.RevokeToken, pb.RevokeTokenRequest(name=name, reason=reason))

    def tokens(self) -> dict[str, str]:
        """Token holder -> role (never the tokens)."""
        return {t.name: auth_pb2.Role.Name(t.role).removeprefix("ROLE_").lower()
                for t in pages(self._stub.ListTokens, pb.ListTokensRequest(page_size=500), "tokens")}

    def _unchanged(self, model: str) -> dict:
        current = call(self._stub.GetModel, pb.GetModelRequest(name=model)).model
        return {"description": current.description, "tags": dict(current.tags)}

    # parameters ---------------------------------------------------------------------------
    def upload_artifact(self, model: str, content: str | Path | bytes, format: str = "onnx",
                        filename: str = "") -> model_pb2.Artifact:
        """Upload a file (or bytes) in chunks; the server checks the sha256 computed here."""
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        name = filename or (Path(content).name if not isinstance(content, bytes) else f"{model}.{format}")
        kind = model_pb2.ArtifactFormat.Value(f"ARTIFACT_FORMAT_{format.upper()}")
        header = pb.UploadArtifactRequest.Header(
            model=model, format=kind, filename=name,
            sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
        )
        parts = [pb.UploadArtifactRequest(header=header)] + [
            pb.UploadArtifactRequest(chunk=data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)
        ]
        return call(self._stub.UploadArtifact, iter(parts)).artifact

    def publish_onnx(self, model: str, onnx: str | Path | bytes, model_type_version: str = "1.0.0",
                     metrics: Mapping[str, float] | None = None, description: str = "",
                     idempotency_key: str = "", reason: str = "") -> ParametersVersion:
        """Publish an ONNX file (or its bytes) as a new parameters version, creating the model
        and its type from the file's signature when they do not exist yet."""
        self.create_model(model, exist_ok=True)
        artifact = self.upload_artifact(model, onnx, "onnx")
        try:
            call(self._stub.GetModelType, pb.GetModelTypeRequest(model=model, version=model_type_version))
        except NotFoundError:
            call(self._stub.CreateModelType, pb.CreateModelTypeRequest(
                model=model, version=model_type_version, signature=artifact.signature,
                framework=model_pb2.FRAMEWORK_ONNX, reason=reason))
        reply = call(self._stub.CreateParametersVersion, pb.CreateParametersVersionRequest(
            model=model, model_type_version=model_type_version,
            primary_artifact_id=artifact.artifact_id, metrics=dict(metrics or {}),
            description=description, idempotency_key=idempotency_key, reason=reason))
        return ParametersVersion.from_proto(reply.parameters)

    def publish_model(self, model: str, estimator, n_features: int | None = None, *,
                      example_input=None, model_type_version: str = "1.0.0",
                      metrics: Mapping[str, float] | None = None, description: str = "",
                      idempotency_key: str = "", reason: str = "") -> ParametersVersion:
        """Publish an in-memory model, exported to ONNX here (one float32 input ``input``).

        scikit-learn estimators and pipelines (``n_features`` inputs) go through skl2onnx,
        XGBoost's scikit-learn models through onnxmltools; a PyTorch module (when torch is installed)
        through ``torch.onnx.export`` with ``example_input``. Nothing is pickled: the registry only
        ever receives ONNX.

        >>> client.registry.publish_model("jet-tagger", fitted_classifier, n_features=8,
        ...                               metrics={"auc": 0.93})
        """
        return self.publish_onnx(model, to_onnx(estimator, n_features, example_input),
                                 model_type_version, metrics, description, idempotency_key, reason)

    def get_version(self, model: str, version: str) -> ParametersVersion:
        reply = call(self._stub.GetParametersVersion, pb.GetParametersVersionRequest(model=model, version=version))
        return ParametersVersion.from_proto(reply.parameters)

    def latest_compatible(self, model: str, model_type_version: str) -> ParametersVersion:
        reply = call(self._stub.GetParametersVersion, pb.GetParametersVersionRequest(
            model=model, latest_compatible_with=model_type_version))
        return ParametersVersion.from_proto(reply.parameters)

    def list_versions(self, model: str = "", limit: int | None = None) -> list[ParametersVersion]:
        request = pb.ListParametersVersionsRequest(model=model, page_size=200)
        return [ParametersVersion.from_proto(p)
                for p in pages(self._stub.ListParametersVersions, request, "parameters", limit)]

    def lineage(self, model: str, version: str) -> list[ParametersVersion]:
        """The version and its ancestors (fine-tuned from), each with its full lineage."""
        reply = call(self._stub.GetLineage, pb.GetLineageRequest(model=model, version=version))
        return [ParametersVersion.from_proto(p) for p in reply.chain]

    def download(self, artifact_id: str) -> Iterator[bytes]:
        for part in stream(self._stub.DownloadArtifact, pb.DownloadArtifactRequest(artifact_id=artifact_id)):
            if part.WhichOneof("part") == "chunk":
                yield part.chunk

    # aliases ------------------------------------------------------------------------------
    def set_alias(self, model: str, alias: str, version: str, reason: str = "",
                  expected_version: str | None = None) -> None:
        call(self._stub.SetAlias, pb.SetAliasRequest(
            model=model, alias=alias, version=version, reason=reason, expected_version=expected_version))

    def resolve_alias(self, model: str, alias: str, at: datetime | None = None) -> ParametersVersion:
        """The version ``alias`` points at now, or pointed at at time ``at``."""
        request = pb.ResolveAliasRequest(model=model, alias=alias)
        if at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(at)
            request.at.CopyFrom(stamp)
        return ParametersVersion.from_proto(call(self._stub.ResolveAlias, request).parameters)

    def alias_history(self, model: str, alias: str = "", limit: int | None = None) -> list[AliasMove]:
        request = pb.ListAliasHistoryRequest(model=model, alias=alias, page_size=200)
        return [AliasMove.from_proto(e) for e in pages(self._stub.ListAliasHistory, request, "events", limit)]

    # intervals of validity ----------------------------------------------------------------
    def create_iov_tag(self, name: str, model: str, kind: str = "run", description: str = "") -> None:
        """``kind``: ``run`` (since = run number), ``run_lumi`` (since = run << 32 | lumi section,
        see :func:`beamops.api.iov.pack_run_lumi`) or ``timestamp`` (Unix seconds)."""
        call(self._stub.CreateIovTag, pb.CreateIovTagRequest(
            name=name, model=model, kind=IOV_KINDS[kind], description=description))

    def append_iov(self, tag: str, since: int, version: str, reason: str = "") -> IovEntry:
        """Append "from ``since`` on, ``version``". A since at or before existing ones corrects
        them for every query after this append; snapshots from before it keep the old answer."""
        reply = call(self._stub.AppendIov, pb.AppendIovRequest(tag=tag, since=since, version=version, reason=reason))
        return IovEntry.from_proto(reply.entry)

    def list_iovs(self, tag: str, snapshot: datetime | None = None, limit: int | None = None) -> list[IovEntry]:
        """Every entry of ``tag`` with its insertion time (``created``), by (since, insertion);
        with ``snapshot`` only those inserted by then."""
        request = pb.ListIovsRequest(tag=tag, page_size=1000)
        if snapshot is not None:
            request.snapshot_time.CopyFrom(_stamp(snapshot))
        return [IovEntry.from_proto(e) for e in pages(self._stub.ListIovs, request, "entries", limit)]

    def resolve_iov(self, tag: str, point: int, snapshot: datetime | None = None) -> IovEntry:
        """The entry valid for run (or time) ``point``: the greatest since <= point, the last
        inserted of equal sinces; with ``snapshot``, as the registry stood then (the answer a
        job got at that time, whatever was appended since)."""
        request = pb.ResolveIovRequest(tag=tag, point=point)
        if snapshot is not None:
            request.snapshot_time.CopyFrom(_stamp(snapshot))
        reply = call(self._stub.ResolveIov, request)
        return IovEntry.from_proto(reply.entry, reply.until)

    def resolve_global_tag(self, name: str, point: int, snapshot: datetime | None = None) -> list[IovEntry]:
        """One entry per tag of the global tag valid at ``point`` (at ``snapshot``, if given)."""
        request = pb.ResolveGlobalTagRequest(name=name, point=point)
        if snapshot is not None:
            request.snapshot_time.CopyFrom(_stamp(snapshot))
        reply = call(self._stub.ResolveGlobalTag, request)
        return [IovEntry.from_proto(e) for e in reply.entries]

    # audit --------------------------------------------------------------------------------
    def audit(self, model: str = "", actor: str = "", action: str = "",
              limit: int | None = 100) -> list[AuditEvent]:
        """Audit events, newest first."""
        request = pb.ListAuditEventsRequest(model=model, actor=actor, action=action, page_size=200)
        return [AuditEvent.from_proto(e) for e in pages(self._stub.ListAuditEvents, request, "events", limit)]
