"""The registry's rules: models, model types, artifacts, parameters versions, aliases, intervals
of validity, lineage and the audit log. No gRPC here: callers pass a :class:`Caller` and get
domain entities back; errors are :mod:`beamops.runtime.errors` exceptions.

Every mutation runs in one :meth:`Store.write` transaction together with its audit event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import is_dataclass
from types import SimpleNamespace
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import delete, func, or_
from sqlmodel import Session, select

from beamops.common.v1 import auth_pb2
from beamops.runtime.pages import Listing, page_size
from beamops.runtime.errors import (
    AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
    ResourceExhausted,
)

from . import records
from .artifacts import ArtifactStore, PendingBlob
from .content_checks import check_content
from . import version_writes as vw
from .lookups import Lookups
from .iov_rules import InsertionClock, check_since, describe as describe_since
from .entities import (
    ARTIFACT_FORMATS, DTYPES, IOV_KINDS, Alias, AliasEvent, Artifact, AuditEvent, AuditQuery, Caller,
    GlobalTag, IovEntry, IovTag, LineageReport, Model, ModelPermission, ModelType, NewParameters, Page,
    ParametersQuery, ParametersVersion, Signature,
)
from .audit_actions import check_details, check_recordable, check_server_action, model_role
from .names import check_action, check_filename, check_name, check_reason, check_tags, check_text
from .onnx_signature import signature_difference
from .tables import (
    AliasEventRow, AliasRow, ArtifactRow, AuditEventRow, GlobalTagRow, IdempotencyKeyRow, IovEntryRow,
    IovTagRow, ModelPermissionRow, ModelRow, ModelTypeRow, ParametersDatasetRow, ParametersRow,
)
from .permissions import check_may_change, check_may_manage, grant_of, role_name
from .versioning import ParamsVersion, latest_compatible, next_params_version, parse_params_version, parse_semver

log = logging.getLogger(__name__)

ALWAYS_PROTECTED = frozenset({"production"})
MAX_SINCE = 2**63 - 1
SHA256_CHARS = frozenset("0123456789abcdef")

# Every list is keyset-paginated (the token holds the last key seen) except parameters ordered by
# a metric (an offset); tokens are bound to the listing and its filters (beamops.runtime.pages).
MODELS = Listing("registry.models")
MODEL_PERMISSIONS = Listing("registry.model_permissions")
MODEL_TYPES = Listing("registry.model_types")
PARAMETERS = Listing("registry.parameters_versions")
ALIASES = Listing("registry.aliases")
ALIAS_HISTORY = Listing("registry.alias_history")
IOV_TAGS = Listing("registry.iov_tags")
IOVS = Listing("registry.iovs")
AUDIT_EVENTS = Listing("registry.audit_events")


def _now_us() -> int:
    return time.time_ns() // 1000


class Upload:
    """An artifact upload in progress (see :meth:`Registry.begin_upload`)."""

    def __init__(self, model: str, fmt: str, filename: str, sha256: str, size_bytes: int,
                 pending: PendingBlob) -> None:
        self.model, self.format, self.filename = model, fmt, filename
        self.declared_sha256, self.declared_size = sha256, size_bytes
        self.pending = pending

    def write(self, chunk: bytes) -> None:
        self.pending.write(chunk)

    def discard(self) -> None:
        self.pending.discard()


class Registry:
    """The registry's domain logic over a :class:`~.store.Store` and an :class:`ArtifactStore`."""

    def __init__(self, store, artifacts: ArtifactStore, clock: Callable[[], int] = _now_us) -> None:
        self.store = store
        self.artifacts = artifacts
        self._clock = clock
        self._lookups = Lookups(store.dialect)
        self._iov_clock = InsertionClock(clock)

    # ----------------------------------------------------------------- start-up

    def cleanup_orphans(self) -> int:
        """Remove upload leftovers and blobs that no artifact row references (run at start)."""
        with self.store.read() as s:
            referenced = set(s.exec(select(ArtifactRow.sha256)).all())
        return self.artifacts.cleanup(referenced)

    # ----------------------------------------------------------------- models

    def create_model(self, caller: Caller, name: str, description: str = "",
                     tags: dict[str, str] | None = None, reason: str = "",
                     restricted: bool = False) -> Model:
        check_name(name, "model name", field="name")
        check_text(description, "description")
        tags = check_tags(tags or {})
        check_reason(reason)

        def change(s: Session) -> Model:
            if self._model_row(s, name, required=False) is not None:
                raise AlreadyExists(f"a model named {name!r} exists already", model=name)
            now = self._clock()
            row = ModelRow(name=name, description=description, owner=caller.name, tags=tags,
                           create_us=now, update_us=now, restricted=restricted)
            s.add(row)
            s.flush()
            self._audit(s, caller, "model.create", name, f"models/{name}", reason,
                        {"restricted": "true"} if restricted else None)
            return records.model(row)

        return self.store.write(change)

    def get_model(self, name: str) -> Model:
        check_name(name, "model name", field="name")
        with self.store.read() as s:
            return records.model(self._model_row(s, name))

    def list_models(self, size: int = 0, token: str = "", name_prefix: str = "",
                    tags: dict[str, str] | None = None) -> Page:
        tags = tags or {}
        query = {"name_prefix": name_prefix, "tags": tags}
        size, after = page_size(size), MODELS.position(token, query)
        with self.store.read() as s:
            stmt = select(ModelRow).order_by(ModelRow.name)
            if name_prefix:
                stmt = stmt.where(ModelRow.name.startswith(name_prefix, autoescape=True))
            if after is not None:
                stmt = stmt.where(ModelRow.name > str(after))
            rows = self._filtered(s, stmt, size, lambda r: _has_tags(r.tags, tags))
        items = [records.model(r) for r in rows[:size]]
        return Page(items, MODELS.token(rows[size - 1].name, query) if len(rows) > size else "")

    def update_model(self, caller: Caller, name: str, description: str,
                     tags: dict[str, str] | None, reason: str = "",
                     restricted: bool | None = None) -> Model:
        check_name(name, "model name", field="name")
        check_text(description, "description")
        tags = check_tags(tags or {})
        check_reason(reason)

        def change(s: Session) -> Model:
            row = self._model_row(s, name, lock=True)
            self._check_change(s, caller, row, auth_pb2.ROLE_PUBLISHER)
            details = {"old_description": row.description, "old_tags": json.dumps(row.tags, sort_keys=True)}
            if restricted is not None and bool(restricted) != bool(row.restricted):
                check_may_manage(caller.principal, name, row.owner)
                details.update(old_restricted=str(bool(row.restricted)).lower(),
                               restricted=str(bool(restricted)).lower())
                row.restricted = bool(restricted)
            row.description, row.tags, row.update_us = description, tags, self._clock()
            s.add(row)
            self._audit(s, caller, "model.update", name, f"models/{name}", reason, details)
            return records.model(row)

        return self.store.write(change)

    def delete_model(self, caller: Caller, name: str, force: bool = False, reason: str = "") -> None:
        check_name(name, "model name", field="name")
        check_reason(reason)

        def change(s: Session) -> None:
            row = self._model_row(s, name, lock=True)
            self._check_change(s, caller, row, auth_pb2.ROLE_ADMIN)
            mid = row.id
            tag_ids = list(s.exec(select(IovTagRow.id).where(IovTagRow.model_id == mid)).all())
            aliases = s.exec(select(func.count()).select_from(AliasRow).where(AliasRow.model_id == mid)).one()
            entries = (s.exec(select(func.count()).select_from(IovEntryRow)
                              .where(IovEntryRow.tag_id.in_(tag_ids))).one() if tag_ids else 0)
            if (aliases or entries) and not force:
                raise FailedPrecondition(
                    f"model {name!r} still has {aliases} alias(es) and {entries} interval(s) of "
                    "validity pointing at its versions; delete them first or pass force=true",
                    model=name,
                )
            param_ids = list(s.exec(select(ParametersRow.id).where(ParametersRow.model_id == mid)).all())
            if tag_ids:
                s.exec(delete(IovEntryRow).where(IovEntryRow.tag_id.in_(tag_ids)))
            s.exec(delete(IovTagRow).where(IovTagRow.model_id == mid))
            s.exec(delete(AliasRow).where(AliasRow.model_id == mid))
            s.exec(delete(AliasEventRow).where(AliasEventRow.model_id == mid))
            if param_ids:
                s.exec(delete(IdempotencyKeyRow).where(IdempotencyKeyRow.parameters_id.in_(param_ids)))
                s.exec(delete(ParametersDatasetRow).where(ParametersDatasetRow.parameters_id.in_(param_ids)))
            s.exec(delete(ParametersRow).where(ParametersRow.model_id == mid))
            s.exec(delete(ArtifactRow).where(ArtifactRow.model_id == mid))
            s.exec(delete(ModelTypeRow).where(ModelTypeRow.model_id == mid))
            s.exec(delete(ModelPermissionRow).where(ModelPermissionRow.model_id == mid))
            s.delete(row)
            self._audit(s, caller, "model.delete", name, f"models/{name}", reason,
                        {"force": str(force).lower(), "parameters_versions": str(len(param_ids)),
                         "iov_tags": str(len(tag_ids))})

        # The blobs stay until the next start, where cleanup_orphans() removes those no row
        # references: deleting them now could race with an upload of the same content.
        self.store.write(change)

    # ----------------------------------------------------------------- per-model permissions

    def set_model_permission(self, caller: Caller, model: str, principal: str, role: int,
                             reason: str = "") -> ModelPermission:
        """Grant ``principal`` ``role`` on ``model`` (replacing an earlier grant); owner or admin."""
        check_name(model, "model name", field="model")
        _check_principal(principal)
        if role not in (auth_pb2.ROLE_READER, auth_pb2.ROLE_PUBLISHER, auth_pb2.ROLE_DEPLOYER, auth_pb2.ROLE_ADMIN):
            raise InvalidArgument("choose the role to grant: ROLE_READER, ROLE_PUBLISHER, ROLE_DEPLOYER "
                                  "or ROLE_ADMIN", field="role")
        check_reason(reason)

        def change(s: Session) -> ModelPermission:
            mrow = self._model_row(s, model, lock=True)
            check_may_manage(caller.principal, model, mrow.owner)
            row = grant_of(s, mrow.id, principal)
            old = role_name(row.role) if row is not None else ""
            if row is None:
                row = ModelPermissionRow(model_id=mrow.id, principal=principal, role=role)
            row.role, row.granted_by, row.create_us = role, caller.name, self._clock()
            s.add(row)
            s.flush()
            self._audit(s, caller, "permission.set", model, f"{model}/permissions/{principal}", reason,
                        {"principal": principal, "role": role_name(role), "old_role": old})
            return records.model_permission(row, model)

        return self.store.write(change)

    def list_model_permissions(self, model: str, size: int = 0, token: str = "") -> Page:
        check_name(model, "model name", field="model")
        size, after = page_size(size), MODEL_PERMISSIONS.position(token, {"model": model})
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            query = (select(ModelPermissionRow).where(ModelPermissionRow.model_id == mrow.id)
                     .order_by(ModelPermissionRow.principal))
            if after is not None:
                query = query.where(ModelPermissionRow.principal > str(after))
            rows = list(s.exec(query.limit(size + 1)).all())
        items = [records.model_permission(r, model) for r in rows[:size]]
        return Page(items, MODEL_PERMISSIONS.token(rows[size - 1].principal, {"model": model})
                    if len(rows) > size else "")

    def remove_model_permission(self, caller: Caller, model: str, principal: str, reason: str = "") -> None:
        check_name(model, "model name", field="model")
        _check_principal(principal)
        check_reason(reason)

        def change(s: Session) -> None:
            mrow = self._model_row(s, model, lock=True)
            check_may_manage(caller.principal, model, mrow.owner)
            row = grant_of(s, mrow.id, principal)
            if row is None:
                raise NotFound(f"{principal!r} has no grant on model {model!r}", model=model)
            old = role_name(row.role)
            s.delete(row)
            self._audit(s, caller, "permission.remove", model, f"{model}/permissions/{principal}", reason,
                        {"principal": principal, "old_role": old})

        self.store.write(change)

    # ----------------------------------------------------------------- model types

    def create_model_type(self, caller: Caller, model: str, version: str, signature: Signature,
                          framework: str = "", code: dict | None = None, description: str = "",
                          reason: str = "") -> ModelType:
        check_name(model, "model name", field="model")
        semver = parse_semver(version, field="version")
        _check_signature(signature)
        check_text(description, "description")
        check_reason(reason)
        code = code or {}

        def change(s: Session) -> ModelType:
            mrow = self._model_row(s, model)
            self._check_change(s, caller, mrow, auth_pb2.ROLE_PUBLISHER)
            existing = s.exec(select(ModelTypeRow).where(
                ModelTypeRow.model_id == mrow.id, ModelTypeRow.major == semver.major,
                ModelTypeRow.minor == semver.minor, ModelTypeRow.patch == semver.patch)).first()
            if existing is not None:
                same = (records.signature_from(existing.signature) == signature
                        and existing.framework == framework and existing.code == code)
                if same:
                    return records.model_type(existing, model)
                raise AlreadyExists(
                    f"model type {model} {semver} exists with a different signature, framework or "
                    "code reference; model types are immutable: create a new version",
                    model=model, version=str(semver),
                )
            row = ModelTypeRow(model_id=mrow.id, major=semver.major, minor=semver.minor, patch=semver.patch,
                               signature=records.signature_json(signature), framework=framework, code=code,
                               description=description, created_by=caller.name, create_us=self._clock())
            s.add(row)
            s.flush()
            self._audit(s, caller, "model_type.create", model, f"{model}/types/{semver}", reason,
                        {"framework": framework})
            return records.model_type(row, model)

        return self.store.write(change)

    def get_model_type(self, model: str, version: str) -> ModelType:
        check_name(model, "model name", field="model")
        semver = parse_semver(version)
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            return records.model_type(self._type_row(s, mrow, semver), model)

    def list_model_types(self, model: str, size: int = 0, token: str = "") -> Page:
        check_name(model, "model name", field="model")
        size, after = page_size(size), MODEL_TYPES.position(token, {"model": model})
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            query = select(ModelTypeRow).where(ModelTypeRow.model_id == mrow.id).order_by(ModelTypeRow.id)
            if after is not None:
                query = query.where(ModelTypeRow.id > int(after))
            rows = s.exec(query.limit(size + 1)).all()
            items = [records.model_type(r, model) for r in rows[:size]]
        return Page(items, MODEL_TYPES.token(rows[size - 1].id, {"model": model}) if len(rows) > size else "")

    # ----------------------------------------------------------------- artifacts

    def begin_upload(self, caller: Caller, model: str, fmt: str, filename: str = "",
                     sha256: str = "", size_bytes: int = 0) -> Upload:
        """Start an upload: checks the header; the bytes then go to :meth:`Upload.write`."""
        check_name(model, "model name", field="header.model")
        if fmt not in ARTIFACT_FORMATS:
            raise InvalidArgument(
                f"choose an artifact format ({', '.join(ARTIFACT_FORMATS)}); pickle-based formats "
                "are not accepted", field="header.format")
        check_filename(filename)
        sha256 = sha256.lower()
        if sha256 and (len(sha256) != 64 or not set(sha256) <= SHA256_CHARS):
            raise InvalidArgument("header.sha256 must be 64 hexadecimal characters", field="header.sha256")
        if size_bytes < 0:
            raise InvalidArgument("header.size_bytes must not be negative", field="header.size_bytes")
        if size_bytes > self.artifacts.max_bytes:
            raise_too_big(size_bytes, self.artifacts.max_bytes)
        with self.store.read() as s:  # checked again when the artifact is recorded
            self._check_change(s, caller, self._model_row(s, model), auth_pb2.ROLE_PUBLISHER)
        return Upload(model, fmt, filename, sha256, size_bytes, self.artifacts.begin_upload())

    def finish_upload(self, caller: Caller, upload: Upload, reason: str = "") -> Artifact:
        """Check the bytes received, make them durable, then record the artifact."""
        pending = upload.pending
        try:
            sha256 = pending.close()
            if upload.declared_size and pending.size != upload.declared_size:
                raise DataLoss(
                    f"the upload was truncated or padded: the header declared {upload.declared_size} "
                    f"bytes but {pending.size} arrived; nothing was stored", model=upload.model)
            if upload.declared_sha256 and sha256 != upload.declared_sha256:
                raise DataLoss(
                    f"checksum mismatch: the header declared sha256 {upload.declared_sha256} but the "
                    f"bytes received hash to {sha256}; nothing was stored", model=upload.model)
            if pending.size == 0:
                raise InvalidArgument("the artifact is empty: send its bytes after the header", field="chunk")
            signature = check_content(pending.path, upload.format, upload.filename)
            self.artifacts.commit(pending)  # durable before the row that points at it
        except BaseException:
            pending.discard()
            raise

        def change(s: Session) -> Artifact:
            mrow = self._model_row(s, upload.model)
            self._check_change(s, caller, mrow, auth_pb2.ROLE_PUBLISHER)
            row = ArtifactRow(artifact_id="art-" + uuid.uuid4().hex, model_id=mrow.id, format=upload.format,
                              filename=upload.filename, sha256=sha256, size_bytes=pending.size,
                              signature=records.signature_json(signature), created_by=caller.name,
                              create_us=self._clock())
            s.add(row)
            s.flush()
            self._audit(s, caller, "artifact.upload", upload.model, f"artifacts/{row.artifact_id}", reason,
                        {"sha256": sha256, "size_bytes": str(pending.size), "format": upload.format})
            return records.artifact(row, upload.model)

        return self.store.write(change)

    def get_artifact(self, artifact_id: str) -> Artifact:
        with self.store.read() as s:
            row = self._artifact_row(s, artifact_id)
            return records.artifact(row, s.get(ModelRow, row.model_id).name)

    def read_artifact(self, artifact_id: str, chunk_size: int = 0) -> tuple[Artifact, Iterator[bytes]]:
        """The artifact and an iterator over its bytes, verified against its sha256 first."""
        artifact = self.get_artifact(artifact_id)
        chunk_size = 1024 * 1024 if chunk_size <= 0 else max(4096, min(chunk_size, 4 * 1024 * 1024))
        return artifact, self.artifacts.read_verified(artifact.sha256, chunk_size)

    # ----------------------------------------------------------------- parameters

    def create_parameters(self, caller: Caller, new: NewParameters) -> ParametersVersion:
        """Register parameters; the version is generated by the rule table (see versioning)."""
        check_name(new.model, "model name", field="model")
        semver = parse_semver(new.model_type_version, field="model_type_version")
        check_text(new.description, "description")
        check_tags(new.tags)
        check_reason(new.reason)
        key = new.idempotency_key
        if key and (len(key) > 200 or not key.isprintable()):
            raise InvalidArgument("idempotency_key must be at most 200 printable characters",
                                  field="idempotency_key")
        for parent in new.lineage.parents:
            check_name(parent.model, "parent model name", field="lineage.parents")
            parse_params_version(parent.version, field="lineage.parents")
        fingerprint = _request_fingerprint(new)

        def change(s: Session) -> ParametersVersion:
            conn = s.connection()
            ctx = conn.execute(vw.CREATE_CONTEXT, {  # one statement: the model (locked) and all the rest
                "name": new.model, "major": semver.major, "minor": semver.minor, "patch": semver.patch,
                "scope": f"parameters:{new.model}", "key": key}).first()
            if ctx is None:
                raise NotFound(f"no model named {new.model!r}", model=new.model)
            mrow = ctx
            check_may_change(s, caller.principal, auth_pb2.ROLE_PUBLISHER, new.model, mrow.id,
                             mrow.owner, mrow.restricted)
            if key and ctx.seen_parameters_id is not None:
                if ctx.seen_request_hash != fingerprint:
                    raise InvalidArgument(
                        f"idempotency_key {key!r} was used before for a different request; use a "
                        "new key for new parameters", field="idempotency_key")
                return self._parameters(s, s.get(ParametersRow, ctx.seen_parameters_id), new.model)
            if ctx.type_id is None:
                raise NotFound(f"model {new.model!r} has no model type {semver}; create it first",
                               model=new.model, version=str(semver))
            trow = SimpleNamespace(id=ctx.type_id, major=ctx.type_major, minor=ctx.type_minor,
                                   patch=ctx.type_patch, signature=ctx.type_signature)
            primary, derived = self._artifacts_for(s, mrow, new)
            if primary is not None and primary.signature is not None:
                declared = records.signature_from(trow.signature)
                actual = records.signature_from(primary.signature)
                if declared is not None and not declared.empty:
                    problem = signature_difference(declared, actual)
                    if problem:
                        raise InvalidArgument(
                            f"the primary artifact does not fit model type {new.model} {semver}: {problem}",
                            field="primary_artifact_id")
            for parent in new.lineage.parents:
                self._params_row(s, self._model_row(s, parent.model), parse_params_version(parent.version))
            # The rule needs the highest minor of the type's major, or to know there is none and
            # no higher major; only a refusal reads every major's highest (to say what exists).
            if ctx.top_minor is not None:
                highest = [ParamsVersion(semver.major, ctx.top_minor)]
            elif ctx.top_major is None or ctx.top_major < semver.major:
                highest = []
            else:
                highest = [ParamsVersion(a, b) for a, b in conn.execute(vw.HIGHEST_PER_MAJOR, {"model_id": mrow.id})]
            version = next_params_version(semver, highest, model=new.model)
            values = dict(
                model_id=mrow.id, major=version.major, minor=version.minor, model_type_id=trow.id,
                primary_artifact_id=primary.id if primary else None,
                derived_artifact_ids=[a.id for a in derived], metrics=dict(new.metrics),
                lineage=records.lineage_json(new.lineage), description=new.description,
                tags=dict(new.tags), reference_distributions=list(new.reference_distributions),
                created_by=caller.name, create_us=self._clock())
            audit = self._audit_values(caller, "parameters.create", new.model, f"{new.model}/parameters/{version}",
                                       new.reason, {"version": str(version), "model_type_version": str(semver),
                                                    "primary_sha256": primary.sha256 if primary else ""})
            key_row = dict(scope=f"parameters:{new.model}", key=key, request_hash=fingerprint,
                           create_us=values["create_us"]) if key else None
            pid = vw.insert_created(conn, values, key_row, audit)
            vw.insert_datasets(conn, [dict(parameters_id=pid, dataset=ds.dataset, dataset_version_id=ds.version_id)
                                      for ds in new.lineage.datasets])
            # A new version has no alias yet, and its type and artifacts are at hand: no re-read.
            return self._parameters(s, SimpleNamespace(id=pid, **values), new.model, trow=trow,
                                    artifacts=[a for a in (primary, *derived) if a is not None], aliases=())

        return self.store.write(change)

    def get_parameters(self, model: str, version: str, cached_only: bool = False) -> ParametersVersion | None:
        check_name(model, "model name", field="model")
        wanted = parse_params_version(version)
        found = self._hot(("version", model, wanted.major, wanted.minor), cached_only,
                          lambda conn: self._lookups.get_parameters(conn, model, wanted.major, wanted.minor))
        if found is not None or cached_only:
            return found
        with self.store.read() as s:  # not found: say what is missing
            mrow = self._model_row(s, model)
            return self._parameters(s, self._params_row(s, mrow, wanted), model)

    def _hot(self, key: tuple, cached_only: bool, read: Callable) -> Any:
        """A hot read through the read cache: memory only when ``cached_only`` (None if not
        there), else the cached value or ``read(connection)`` (cached when found)."""
        if cached_only:
            return self.store.cache.get(key)
        return self.store.cache.load(key, lambda: self.store.read_once(read))

    def latest_compatible(self, model: str, model_type_version: str) -> ParametersVersion:
        """The highest parameters version whose MAJOR is the model type's MAJOR."""
        check_name(model, "model name", field="model")
        semver = parse_semver(model_type_version, field="latest_compatible_with")
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            top = s.exec(select(func.max(ParametersRow.minor)).where(
                ParametersRow.model_id == mrow.id, ParametersRow.major == semver.major)).one()
            best = latest_compatible(semver, [] if top is None else [ParamsVersion(semver.major, top)])
            if best is None:
                raise NotFound(f"model {model!r} has no parameters compatible with model type {semver} "
                               f"(none of major {semver.major})", model=model)
            return self._parameters(s, self._params_row(s, mrow, best), model)

    def list_parameters(self, query: ParametersQuery, size: int = 0, token: str = "") -> Page:
        size = page_size(size)
        by_metric = query.order in ("metric_desc", "metric_asc")
        if by_metric and not query.order_metric:
            raise InvalidArgument("order_metric is needed to order by a metric", field="order_metric")
        key = PARAMETERS.position(token, query)  # an offset when by_metric, else the last id seen
        with self.store.read() as s:
            stmt = select(ParametersRow)
            if query.model:
                check_name(query.model, "model name", field="model")
                stmt = stmt.where(ParametersRow.model_id == self._model_row(s, query.model).id)
            if query.name_prefix:
                stmt = stmt.where(ParametersRow.model_id.in_(select(ModelRow.id).where(
                    ModelRow.name.startswith(query.name_prefix, autoescape=True))))
            if query.model_type_version:
                stmt = stmt.where(ParametersRow.major ==
                                  parse_semver(query.model_type_version, "model_type_version").major)
            if query.alias:
                stmt = stmt.where(ParametersRow.id.in_(select(AliasRow.parameters_id).where(
                    AliasRow.name == query.alias)))
            if query.dataset_version_id:
                stmt = stmt.where(ParametersRow.id.in_(select(ParametersDatasetRow.parameters_id).where(
                    ParametersDatasetRow.dataset_version_id == query.dataset_version_id)))
            if query.created_after:
                stmt = stmt.where(ParametersRow.create_us >= records.to_us(query.created_after))
            if query.created_before:
                stmt = stmt.where(ParametersRow.create_us < records.to_us(query.created_before))

            def keep(row: ParametersRow) -> bool:
                if not _has_tags(row.tags, query.tags):
                    return False
                for metric, low, high in query.metric_ranges:
                    value = row.metrics.get(metric)
                    if value is None or (low is not None and value < low) or (high is not None and value > high):
                        return False
                return not by_metric or query.order_metric in row.metrics

            if by_metric:
                rows = [r for r in s.exec(stmt).all() if keep(r)]
                rows.sort(key=lambda r: (r.metrics[query.order_metric], r.id),
                          reverse=query.order == "metric_desc")
                offset = int(key) if key is not None else 0
                page = rows[offset:offset + size]
                more = offset + size < len(rows)
                next_token = PARAMETERS.token(offset + size, query) if more else ""
            else:
                ascending = query.order == "create_time_asc"
                stmt = stmt.order_by(ParametersRow.id if ascending else ParametersRow.id.desc())
                if key is not None:
                    after = int(key)
                    stmt = stmt.where(ParametersRow.id > after if ascending else ParametersRow.id < after)
                rows = self._filtered(s, stmt, size, keep)
                page = rows[:size]
                next_token = PARAMETERS.token(rows[size - 1].id, query) if len(rows) > size else ""
            return Page([self._parameters(s, r) for r in page], next_token)

    def get_lineage(self, model: str, version: str) -> LineageReport:
        """The version, its parents, their parents... (each once), its alias moves and IOVs."""
        first = self.get_parameters(model, version)
        chain, seen, queue = [first], {(model, first.version)}, list(first.lineage.parents)
        with self.store.read() as s:
            while queue:
                ref = queue.pop(0)
                if (ref.model, ref.version) in seen:
                    continue
                seen.add((ref.model, ref.version))
                mrow = self._model_row(s, ref.model, required=False)
                prow = mrow and s.exec(select(ParametersRow).where(
                    ParametersRow.model_id == mrow.id, *_version_is(parse_params_version(ref.version)))).first()
                if prow is None:
                    continue  # a parent deleted since; the chain stops there
                parent = self._parameters(s, prow, ref.model)
                chain.append(parent)
                queue.extend(parent.lineage.parents)
            mrow = self._model_row(s, model)
            events = s.exec(select(AliasEventRow).where(
                AliasEventRow.model_id == mrow.id,
                or_(AliasEventRow.from_version == first.version, AliasEventRow.to_version == first.version),
            ).order_by(AliasEventRow.id)).all()
            prow = self._params_row(s, mrow, parse_params_version(first.version))
            entries = s.exec(select(IovEntryRow, IovTagRow.name).join(IovTagRow, IovTagRow.id == IovEntryRow.tag_id)
                             .where(IovEntryRow.parameters_id == prow.id).order_by(IovEntryRow.id)).all()
            return LineageReport(
                chain=chain,
                alias_events=[records.alias_event(e, model) for e in events],
                iov_entries=[records.iov_entry(tag, e.since, model, first.version, e.created_by, e.reason,
                                               e.create_us) for e, tag in entries],
            )

    # ----------------------------------------------------------------- aliases

    def set_alias(self, caller: Caller, model: str, alias: str, version: str,
                  expected_version: str | None = None, protected: bool = False, reason: str = "") -> Alias:
        check_name(model, "model name", field="model")
        check_name(alias, "alias name", field="alias")
        wanted = parse_params_version(version)
        check_reason(reason)

        def change(s: Session) -> Alias:
            mrow = self._model_row(s, model, lock=True)
            prow = self._params_row(s, mrow, wanted)
            row = s.exec(select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == alias)).first()
            current = self._version_of(s, row.parameters_id) if row else ""
            if expected_version is not None and expected_version != current:
                raise FailedPrecondition(
                    f"alias {alias!r} of {model} points at {current or 'nothing'}, not at "
                    f"{expected_version or 'nothing'} as expected; someone moved it: read it again",
                    model=model, alias=alias)
            is_protected = alias in ALWAYS_PROTECTED or protected or bool(row and row.protected)
            if is_protected and not caller.principal.may(auth_pb2.ROLE_DEPLOYER):
                raise PermissionDenied(
                    f"alias {alias!r} of {model} is protected: only the deployer role may set or move "
                    f"it, and {caller.name!r} is not a deployer", model=model, alias=alias)
            self._check_change(s, caller, mrow, auth_pb2.ROLE_DEPLOYER if is_protected else auth_pb2.ROLE_PUBLISHER)
            now = self._clock()
            if row is not None and row.parameters_id == prow.id and row.protected == is_protected:
                return records.alias(row, model, str(wanted))  # already there: nothing to record
            if row is None:
                row = AliasRow(model_id=mrow.id, name=alias, parameters_id=prow.id)
            row.parameters_id, row.protected, row.updated_by, row.update_us = prow.id, is_protected, caller.name, now
            s.add(row)
            s.add(AliasEventRow(model_id=mrow.id, alias=alias, from_version=current, to_version=str(wanted),
                                actor=caller.name, reason=reason, event_us=now))
            action = "alias.move" if current else "alias.create"
            self._audit(s, caller, action, model, f"{model}/aliases/{alias}", reason,
                        {"from_version": current, "to_version": str(wanted), "protected": str(is_protected).lower()})
            s.flush()
            return records.alias(row, model, str(wanted))

        return self.store.write(change)

    def delete_alias(self, caller: Caller, model: str, alias: str, reason: str = "") -> None:
        check_name(model, "model name", field="model")
        check_name(alias, "alias name", field="alias")
        check_reason(reason)

        def change(s: Session) -> None:
            mrow = self._model_row(s, model, lock=True)
            row = self._alias_row(s, mrow, alias)
            current = self._version_of(s, row.parameters_id)
            if row.protected and not caller.principal.may(auth_pb2.ROLE_DEPLOYER):
                raise PermissionDenied(f"alias {alias!r} of {model} is protected; only deployers may delete it")
            self._check_change(s, caller, mrow, auth_pb2.ROLE_DEPLOYER)
            s.delete(row)
            s.add(AliasEventRow(model_id=mrow.id, alias=alias, from_version=current, to_version="",
                                actor=caller.name, reason=reason, event_us=self._clock()))
            self._audit(s, caller, "alias.delete", model, f"{model}/aliases/{alias}", reason,
                        {"from_version": current})

        self.store.write(change)

    def resolve_alias(self, model: str, alias: str, at: datetime | None = None,
                      cached_only: bool = False) -> tuple[Alias, ParametersVersion] | None:
        check_name(model, "model name", field="model")
        check_name(alias, "alias name", field="alias")
        if at is None:
            found = self._hot(("alias", model, alias), cached_only,
                              lambda conn: self._lookups.resolve_alias(conn, model, alias))
            if found is not None or cached_only:
                return found
        elif cached_only:
            return None
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            if at is None:  # not found: say what is missing (or it appeared since)
                row = self._alias_row(s, mrow, alias)
                prow = s.get(ParametersRow, row.parameters_id)
                return records.alias(row, model, f"{prow.major}.{prow.minor}"), self._parameters(s, prow, model)
            event = s.exec(select(AliasEventRow).where(
                AliasEventRow.model_id == mrow.id, AliasEventRow.alias == alias,
                AliasEventRow.event_us <= records.to_us(at)).order_by(
                AliasEventRow.event_us.desc(), AliasEventRow.id.desc()).limit(1)).first()
            if event is None or not event.to_version:
                raise NotFound(f"alias {alias!r} of {model} did not exist at {at.isoformat()}",
                               model=model, alias=alias)
            prow = self._params_row(s, mrow, parse_params_version(event.to_version))
            current = s.exec(select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == alias)).first()
            then = Alias(model, alias, event.to_version,
                         alias in ALWAYS_PROTECTED or bool(current and current.protected),
                         event.actor, records.to_datetime(event.event_us))
            return then, self._parameters(s, prow, model)

    def list_aliases(self, model: str, size: int = 0, token: str = "") -> Page:
        check_name(model, "model name", field="model")
        size, after = page_size(size), ALIASES.position(token, {"model": model})
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            stmt = (select(AliasRow, ParametersRow.major, ParametersRow.minor)
                    .join(ParametersRow, ParametersRow.id == AliasRow.parameters_id)
                    .where(AliasRow.model_id == mrow.id).order_by(AliasRow.name))
            if after is not None:
                stmt = stmt.where(AliasRow.name > str(after))
            rows = s.exec(stmt.limit(size + 1)).all()
            items = [records.alias(r, model, f"{a}.{b}") for r, a, b in rows[:size]]
        return Page(items, ALIASES.token(rows[size - 1][0].name, {"model": model}) if len(rows) > size else "")

    def alias_events_after(self, after_id: int | None, limit: int = 100) -> tuple[int, list[tuple[int, AliasEvent]]]:
        """Alias changes of every model recorded after event ``after_id``, oldest first, at most
        ``limit``, and the id to continue after (``after_id=None``: no events, the newest id)."""
        with self.store.read() as s:
            if after_id is None:
                newest = s.exec(select(AliasEventRow.id).order_by(AliasEventRow.id.desc()).limit(1)).first()
                return newest or 0, []
            rows = s.exec(select(AliasEventRow, ModelRow.name).join(ModelRow, ModelRow.id == AliasEventRow.model_id)
                          .where(AliasEventRow.id > after_id).order_by(AliasEventRow.id).limit(limit)).all()
        events = [(row.id, records.alias_event(row, name)) for row, name in rows]
        return (events[-1][0] if events else after_id), events

    def alias_history(self, model: str, alias: str = "", size: int = 0, token: str = "") -> Page:
        """Every change of the model's aliases (or of one alias), newest first."""
        check_name(model, "model name", field="model")
        if alias:
            check_name(alias, "alias name", field="alias")
        query = {"model": model, "alias": alias}
        size, after = page_size(size), ALIAS_HISTORY.position(token, query)
        with self.store.read() as s:
            mrow = self._model_row(s, model)
            stmt = select(AliasEventRow).where(AliasEventRow.model_id == mrow.id).order_by(AliasEventRow.id.desc())
            if alias:
                stmt = stmt.where(AliasEventRow.alias == alias)
            if after is not None:
                stmt = stmt.where(AliasEventRow.id < int(after))
            rows = s.exec(stmt.limit(size + 1)).all()
            items = [records.alias_event(r, model) for r in rows[:size]]
        return Page(items, ALIAS_HISTORY.token(rows[size - 1].id, query) if len(rows) > size else "")

    # ----------------------------------------------------------------- intervals of validity

    def create_iov_tag(self, caller: Caller, name: str, model: str, kind: str, description: str = "",
                       reason: str = "") -> IovTag:
        check_name(name, "tag name", field="name")
        check_name(model, "model name", field="model")
        if kind not in IOV_KINDS:
            raise InvalidArgument("choose the tag's kind: IOV_KIND_RUN (since = run number), IOV_KIND_RUN_LUMI "
                                  "(since = run << 32 | lumi section) or IOV_KIND_TIMESTAMP (since = Unix "
                                  "seconds)", field="kind")
        check_text(description, "description")
        check_reason(reason)

        def change(s: Session) -> IovTag:
            mrow = self._model_row(s, model)
            self._check_change(s, caller, mrow, auth_pb2.ROLE_DEPLOYER)
            if s.exec(select(IovTagRow.id).where(IovTagRow.name == name)).first() is not None:
                raise AlreadyExists(f"an IOV tag named {name!r} exists already", tag=name)
            row = IovTagRow(name=name, model_id=mrow.id, kind=kind, description=description,
                            created_by=caller.name, create_us=self._clock())
            s.add(row)
            s.flush()
            self._audit(s, caller, "iov_tag.create", model, f"tags/{name}", reason, {"kind": kind})
            return records.iov_tag(row, model)

        return self.store.write(change)

    def get_iov_tag(self, name: str) -> IovTag:
        check_name(name, "tag name", field="name")
        with self.store.read() as s:
            row = self._tag_row(s, name)
            return records.iov_tag(row, s.get(ModelRow, row.model_id).name)

    def list_iov_tags(self, model: str = "", size: int = 0, token: str = "") -> Page:
        size, after = page_size(size), IOV_TAGS.position(token, {"model": model})
        with self.store.read() as s:
            stmt = (select(IovTagRow, ModelRow.name).join(ModelRow, ModelRow.id == IovTagRow.model_id)
                    .order_by(IovTagRow.name))
            if model:
                check_name(model, "model name", field="model")
                stmt = stmt.where(IovTagRow.model_id == self._model_row(s, model).id)
            if after is not None:
                stmt = stmt.where(IovTagRow.name > str(after))
            rows = s.exec(stmt.limit(size + 1)).all()
            items = [records.iov_tag(r, m) for r, m in rows[:size]]
        return Page(items, IOV_TAGS.token(rows[size - 1][0].name, {"model": model}) if len(rows) > size else "")

    def append_iov(self, caller: Caller, tag: str, since: int, version: str, reason: str = "") -> IovEntry:
        """Append ``since -> version`` with its insertion time. Any since the tag's kind allows is
        accepted, also one at or before existing sinces: for queries after its insertion the new
        entry covers the entries it overlaps (CondDB's rule; see lookups.py). Insertion times are
        strictly increasing within a tag (one microsecond past the tag's last if the clock has
        not moved), so a snapshot time never splits an append."""
        check_name(tag, "tag name", field="tag")
        if since > MAX_SINCE:
            raise InvalidArgument(f"since must be at most {MAX_SINCE}", field="since")
        wanted = parse_params_version(version)
        check_reason(reason)

        def change(s: Session) -> IovEntry:
            trow = self._tag_row(s, tag, lock=True)
            check_since(trow.kind, since, tag)
            mrow = s.get(ModelRow, trow.model_id)
            self._check_change(s, caller, mrow, auth_pb2.ROLE_DEPLOYER)
            prow = self._params_row(s, mrow, wanted)
            last_us = s.exec(select(func.max(IovEntryRow.create_us)).where(IovEntryRow.tag_id == trow.id)).one()
            create_us = self._iov_clock.insertion(last_us)
            details = {"since": str(since), "version": str(wanted), "kind": trow.kind,
                       "insertion_time": records.to_datetime(create_us).isoformat()}
            if trow.kind == "run_lumi":
                details["since_run_lumi"] = describe_since(trow.kind, since)
            current = self._resolve(s, trow, since)  # what the new entry covers, for the audit log
            if current is not None:
                entry, until = current
                if entry.since == since:
                    details["corrects"] = f"the entry since {since} (version {entry.parameters.version})"
                elif until:  # before a later since: part of an older interval is corrected
                    details["covers"] = (f"[{since}, {until}) of the entry since {entry.since} "
                                         f"(version {entry.parameters.version})")
                if until:
                    details["until"] = str(until)
            row = IovEntryRow(tag_id=trow.id, since=since, parameters_id=prow.id, created_by=caller.name,
                              reason=reason, create_us=create_us)
            s.add(row)
            s.flush()
            self._audit(s, caller, "iov.append", mrow.name, f"tags/{tag}", reason, details)
            return records.iov_entry(tag, since, mrow.name, str(wanted), caller.name, reason, row.create_us)

        return self.store.write(change)

    def list_iovs(self, tag: str, size: int = 0, token: str = "", snapshot: datetime | None = None) -> Page:
        """Every entry of the tag with its insertion time, by (since, insertion); with ``snapshot``
        only those inserted at or before it."""
        check_name(tag, "tag name", field="tag")
        snapshot_us = self._snapshot_us(snapshot)
        query = {"tag": tag, "snapshot_us": snapshot_us}
        size, after = page_size(size), IOVS.position(token, query)
        with self.store.read() as s:
            trow = self._tag_row(s, tag)
            model = s.get(ModelRow, trow.model_id).name
            stmt = (select(IovEntryRow, ParametersRow.major, ParametersRow.minor)
                    .join(ParametersRow, ParametersRow.id == IovEntryRow.parameters_id)
                    .where(IovEntryRow.tag_id == trow.id)
                    .order_by(IovEntryRow.since, IovEntryRow.create_us, IovEntryRow.id))
            if snapshot_us is not None:
                stmt = stmt.where(IovEntryRow.create_us <= snapshot_us)
            if after is not None:
                since, create_us, entry_id = (int(v) for v in after)
                stmt = stmt.where(or_(
                    IovEntryRow.since > since,
                    (IovEntryRow.since == since) & (IovEntryRow.create_us > create_us),
                    (IovEntryRow.since == since) & (IovEntryRow.create_us == create_us) & (IovEntryRow.id > entry_id)))
            rows = s.exec(stmt.limit(size + 1)).all()
            items = [records.iov_entry(tag, e.since, model, f"{a}.{b}", e.created_by, e.reason, e.create_us)
                     for e, a, b in rows[:size]]
        last = rows[size - 1][0] if len(rows) > size else None
        return Page(items, IOVS.token([last.since, last.create_us, last.id], query) if last else "")

    def resolve_iov(self, tag: str, point: int, cached_only: bool = False,
                    snapshot: datetime | None = None) -> tuple[IovEntry, int] | None:
        """The entry valid at ``point`` and the next since (0 if none), as the tag stood at
        ``snapshot`` (None: now): the rule is in lookups.py. The tag's timeline is cached whole
        with insertion times, so snapshots resolve from memory too."""
        check_name(tag, "tag name", field="tag")
        point = min(point, MAX_SINCE)
        snapshot_us = self._snapshot_us(snapshot)
        timeline = self._hot(("iov", tag), cached_only, lambda conn: self._lookups.iov_timeline(conn, tag))
        if cached_only and (timeline is None or timeline.too_long):
            return None  # not in memory, or resolved in SQL
        if timeline is not None and not timeline.too_long:
            found = timeline.resolve(point, snapshot_us)
        else:
            found = self.store.read_once(lambda conn: self._lookups.resolve_iov(conn, tag, point, snapshot_us))
        if found is not None or cached_only:
            return found
        with self.store.read() as s:  # nothing valid: say whether the tag exists
            trow = self._tag_row(s, tag)
            found = self._resolve(s, trow, point, snapshot_us)
            if found is None:
                when = "" if snapshot is None else f" as it stood at {records.to_datetime(snapshot_us).isoformat()}"
                raise NotFound(f"tag {tag!r}{when} has no entry valid at {point} (its first entry starts later, "
                               "or it has none)", tag=tag)
            return found

    def create_global_tag(self, caller: Caller, name: str, tags: Sequence[str], description: str = "",
                          reason: str = "") -> GlobalTag:
        check_name(name, "global tag name", field="name")
        tags = list(dict.fromkeys(tags))
        if not tags:
            raise InvalidArgument("a global tag needs at least one IOV tag", field="tags")
        for tag in tags:
            check_name(tag, "tag name", field="tags")
        check_text(description, "description")
        check_reason(reason)

        def change(s: Session) -> GlobalTag:
            if s.exec(select(GlobalTagRow.id).where(GlobalTagRow.name == name)).first() is not None:
                raise AlreadyExists(f"a global tag named {name!r} exists already", global_tag=name)
            found = set(s.exec(select(IovTagRow.name).where(IovTagRow.name.in_(tags))).all())
            missing = [t for t in tags if t not in found]
            if missing:
                raise NotFound(f"no IOV tag named {', '.join(repr(t) for t in missing)}", tag=missing[0])
            row = GlobalTagRow(name=name, tags=tags, description=description, created_by=caller.name,
                               create_us=self._clock())
            s.add(row)
            s.flush()
            self._audit(s, caller, "global_tag.create", "", f"global_tags/{name}", reason, {"tags": ",".join(tags)})
            return records.global_tag(row)

        return self.store.write(change)

    def get_global_tag(self, name: str) -> GlobalTag:
        check_name(name, "global tag name", field="name")
        with self.store.read() as s:
            return records.global_tag(self._global_tag_row(s, name))

    def resolve_global_tag(self, name: str, point: int,
                           snapshot: datetime | None = None) -> tuple[list[IovEntry], list[str]]:
        """Every tag of the global tag resolved at ``point`` (as it stood at ``snapshot``, None:
        now), and the tags with no valid entry. A global tag's list of tags never changes."""
        check_name(name, "global tag name", field="name")
        snapshot_us = self._snapshot_us(snapshot)
        entries, unresolved = [], []
        with self.store.read() as s:
            grow = self._global_tag_row(s, name)
            for tag in grow.tags:
                trow = s.exec(select(IovTagRow).where(IovTagRow.name == tag)).first()
                found = self._resolve(s, trow, point, snapshot_us) if trow else None
                if found is None:
                    unresolved.append(tag)
                else:
                    entries.append(found[0])
        return entries, unresolved

    # ----------------------------------------------------------------- audit

    def list_audit_events(self, query: AuditQuery, size: int = 0, token: str = "") -> Page:
        size, after = page_size(size), AUDIT_EVENTS.position(token, query)
        with self.store.read() as s:
            stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc())
            if query.model:
                stmt = stmt.where(AuditEventRow.model == query.model)
            if query.actor:
                stmt = stmt.where(AuditEventRow.actor == query.actor)
            if query.action_prefix:
                stmt = stmt.where(AuditEventRow.action.startswith(query.action_prefix, autoescape=True))
            if query.start_time:
                stmt = stmt.where(AuditEventRow.event_us >= records.to_us(query.start_time))
            if query.end_time:
                stmt = stmt.where(AuditEventRow.event_us < records.to_us(query.end_time))
            if after is not None:
                stmt = stmt.where(AuditEventRow.id < int(after))
            rows = s.exec(stmt.limit(size + 1)).all()
            items = [records.audit_event(r) for r in rows[:size]]
        return Page(items, AUDIT_EVENTS.token(rows[size - 1].id, query) if len(rows) > size else "")

    def record_audit_event(self, caller: Caller, action: str, model: str = "", resource: str = "",
                           reason: str = "", details: dict[str, str] | None = None) -> AuditEvent:
        """Another service records one of its mutations (RecordAuditEvent); the actor is always
        the caller. Only the other services' namespaces, with the role of the change they record
        (audit_actions); the registry's own actions are PERMISSION_DENIED here. A deployment event
        of a model authorises that change: the caller must be allowed to change the model
        (``audit_actions.model_role``; a restricted model's grants), in the same transaction."""
        check_action(action)
        check_recordable(caller.principal, action)
        if model:
            check_name(model, "model name", field="model")
        check_reason(resource, "resource", limit=500)
        check_reason(reason)
        details = check_details(details or {})
        needed = model_role(action) if model else None

        def change(s: Session) -> AuditEvent:
            self._check_model_change(s, caller, model, needed)
            return records.audit_event(self._audit(s, caller, action, model, resource, reason, details,
                                                   recorded=True))

        return self.store.write(change)

    def record_server_event(self, caller: Caller, action: str, model: str = "", resource: str = "",
                            reason: str = "", details: dict[str, str] | None = None) -> AuditEvent:
        """The registry records a change it made outside a model transaction (token_admin), in one
        of its reserved namespaces; the actor is the caller."""
        check_action(action)
        check_reason(reason)
        return self.store.write(lambda s: records.audit_event(
            self._audit(s, caller, action, model, resource, reason, details)))

    # ----------------------------------------------------------------- helpers

    def _audit(self, s: Session, caller: Caller, action: str, model: str, resource: str, reason: str,
               details: dict[str, str] | None = None, recorded: bool = False) -> SimpleNamespace:
        """Append the audit event of a mutation, in its transaction (a Core insert)."""
        values = self._audit_values(caller, action, model, resource, reason, details, recorded)
        return SimpleNamespace(id=vw.insert_audit_event(s.connection(), values), **values)

    def _audit_values(self, caller: Caller, action: str, model: str, resource: str, reason: str,
                      details: dict[str, str] | None = None, recorded: bool = False) -> dict:
        """The row of one audit event. The actor is the authenticated caller, always; ``recorded``:
        through RecordAuditEvent (checked there), else the registry's own action, which must be in
        a reserved namespace. The reason is checked again here (one line, no control character)
        whatever path it came by; the transaction then stores nothing."""
        if not recorded:
            check_server_action(action)
        check_reason(reason)
        return dict(event_us=self._clock(), actor=caller.name, action=action, model=model,
                    resource=resource, reason=reason, details=details or {}, request_id=caller.request_id)

    @staticmethod
    def _check_change(s: Session, caller: Caller, mrow: ModelRow, needed: int) -> None:
        check_may_change(s, caller.principal, needed, mrow.name, mrow.id, mrow.owner, mrow.restricted)

    def _check_model_change(self, s: Session, caller: Caller, model: str, needed: int | None) -> None:
        """A recorded event that authorises a change of ``model`` (``needed``: the role on it, None:
        none): the caller must be allowed to change it. A model that does not exist (deleted while
        deployed) restricts nothing."""
        mrow = self._model_row(s, model, required=False) if needed is not None else None
        if mrow is not None:
            self._check_change(s, caller, mrow, needed)

    @staticmethod
    def _filtered(s: Session, stmt, size: int, keep: Callable) -> list:
        """Up to size+1 rows of ``stmt`` that pass ``keep`` (fetched in batches)."""
        out: list = []
        offset, batch = 0, max(size + 1, 200)
        while len(out) <= size:
            rows = s.exec(stmt.offset(offset).limit(batch)).all()
            out.extend(r for r in rows if keep(r))
            if len(rows) < batch:
                break
            offset += batch
        return out[:size + 1]

    @staticmethod
    def _model_row(s: Session, name: str, required: bool = True, lock: bool = False) -> ModelRow | None:
        stmt = select(ModelRow).where(ModelRow.name == name)
        if lock:
            stmt = stmt.with_for_update()
        row = s.exec(stmt).first()
        if row is None and required:
            raise NotFound(f"no model named {name!r}", model=name)
        return row

    @staticmethod
    def _type_row(s: Session, mrow: ModelRow, semver) -> ModelTypeRow:
        row = s.exec(select(ModelTypeRow).where(
            ModelTypeRow.model_id == mrow.id, ModelTypeRow.major == semver.major,
            ModelTypeRow.minor == semver.minor, ModelTypeRow.patch == semver.patch)).first()
        if row is None:
            raise NotFound(f"model {mrow.name!r} has no model type {semver}; create it first",
                           model=mrow.name, version=str(semver))
        return row

    @staticmethod
    def _params_row(s: Session, mrow: ModelRow, version: ParamsVersion) -> ParametersRow:
        row = s.exec(select(ParametersRow).where(ParametersRow.model_id == mrow.id, *_version_is(version))).first()
        if row is None:
            raise NotFound(f"model {mrow.name!r} has no parameters version {version}",
                           model=mrow.name, version=str(version))
        return row

    @staticmethod
    def _artifact_row(s: Session, artifact_id: str) -> ArtifactRow:
        row = s.exec(select(ArtifactRow).where(ArtifactRow.artifact_id == artifact_id)).first() \
            if artifact_id and len(artifact_id) <= 64 else None
        if row is None:
            raise NotFound(f"no artifact with id {artifact_id[:64]!r}", artifact_id=artifact_id[:64])
        return row

    @staticmethod
    def _alias_row(s: Session, mrow: ModelRow, alias: str) -> AliasRow:
        row = s.exec(select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == alias)).first()
        if row is None:
            raise NotFound(f"model {mrow.name!r} has no alias {alias!r}", model=mrow.name, alias=alias)
        return row

    @staticmethod
    def _tag_row(s: Session, name: str, lock: bool = False) -> IovTagRow:
        stmt = select(IovTagRow).where(IovTagRow.name == name)
        if lock:
            stmt = stmt.with_for_update()
        row = s.exec(stmt).first()
        if row is None:
            raise NotFound(f"no IOV tag named {name!r}", tag=name)
        return row

    @staticmethod
    def _global_tag_row(s: Session, name: str) -> GlobalTagRow:
        row = s.exec(select(GlobalTagRow).where(GlobalTagRow.name == name)).first()
        if row is None:
            raise NotFound(f"no global tag named {name!r}", global_tag=name)
        return row

    @staticmethod
    def _version_of(s: Session, parameters_id: int) -> str:
        major, minor = s.exec(select(ParametersRow.major, ParametersRow.minor).where(
            ParametersRow.id == parameters_id)).one()
        return f"{major}.{minor}"

    def _resolve(self, s: Session, trow: IovTagRow, point: int,
                 snapshot_us: int | None = None) -> tuple[IovEntry, int] | None:
        """The entry valid at ``point`` among those inserted by ``snapshot_us`` (None: all)."""
        point = min(point, MAX_SINCE)
        counted = [IovEntryRow.tag_id == trow.id]
        if snapshot_us is not None:
            counted.append(IovEntryRow.create_us <= snapshot_us)
        found = s.exec(select(IovEntryRow, ParametersRow.major, ParametersRow.minor)
                       .join(ParametersRow, ParametersRow.id == IovEntryRow.parameters_id)
                       .where(*counted, IovEntryRow.since <= point)
                       .order_by(IovEntryRow.since.desc(), IovEntryRow.create_us.desc(), IovEntryRow.id.desc())
                       .limit(1)).first()
        if found is None:
            return None
        entry, major, minor = found
        until = s.exec(select(func.min(IovEntryRow.since)).where(*counted, IovEntryRow.since > entry.since)).one()
        model = s.get(ModelRow, trow.model_id).name
        return (records.iov_entry(trow.name, entry.since, model, f"{major}.{minor}", entry.created_by,
                                  entry.reason, entry.create_us), until or 0)

    def _snapshot_us(self, snapshot: datetime | None) -> int | None:
        """A snapshot time in microseconds; one later than the registry's clock is refused (what
        it answers could still change, so it would reproduce nothing): iov_rules.InsertionClock."""
        return None if snapshot is None else self._iov_clock.accept_snapshot(records.to_us(snapshot))

    def _artifacts_for(self, s: Session, mrow: ModelRow, new: NewParameters):
        def one(artifact_id: str, field: str) -> ArtifactRow:
            row = s.exec(select(ArtifactRow).where(ArtifactRow.artifact_id == artifact_id)).first()
            if row is None or row.model_id != mrow.id:
                raise NotFound(f"model {mrow.name!r} has no artifact {artifact_id[:64]!r}; upload it first",
                               model=mrow.name, artifact_id=artifact_id[:64])
            return row

        primary = one(new.primary_artifact_id, "primary_artifact_id") if new.primary_artifact_id else None
        derived = [one(a, "derived_artifact_ids") for a in dict.fromkeys(new.derived_artifact_ids)]
        return primary, derived

    def _parameters(self, s: Session, row: ParametersRow, model: str | None = None, *,
                    trow: ModelTypeRow | None = None, artifacts: Sequence[ArtifactRow] | None = None,
                    aliases: Sequence[str] | None = None) -> ParametersVersion:
        """The entity of ``row``; what the caller already holds (type, artifacts, aliases) is
        not read again."""
        model = model or s.get(ModelRow, row.model_id).name
        trow = trow or s.get(ModelTypeRow, row.model_type_id)
        ids = ([row.primary_artifact_id] if row.primary_artifact_id else []) + list(row.derived_artifact_ids)
        if artifacts is not None:
            arts = {a.id: a for a in artifacts}
        else:
            arts = {a.id: a for a in s.exec(select(ArtifactRow).where(ArtifactRow.id.in_(ids))).all()} if ids else {}
        if aliases is None:
            aliases = s.exec(select(AliasRow.name).where(AliasRow.parameters_id == row.id)
                             .order_by(AliasRow.name)).all()
        primary = arts.get(row.primary_artifact_id) if row.primary_artifact_id else None
        return ParametersVersion(
            model=model, version=f"{row.major}.{row.minor}",
            model_type_version=f"{trow.major}.{trow.minor}.{trow.patch}",
            primary_artifact=records.artifact(primary, model) if primary else None,
            derived_artifacts=tuple(records.artifact(arts[i], model) for i in row.derived_artifact_ids if i in arts),
            metrics=dict(row.metrics), lineage=records.lineage_from(row.lineage), description=row.description,
            tags=dict(row.tags), aliases=tuple(aliases), created_by=row.created_by,
            create_time=records.to_datetime(row.create_us),
            reference_distributions=tuple(row.reference_distributions),
        )


def _request_fingerprint(new: NewParameters) -> str:
    """The sha256 of what a create asks for (all but its idempotency key and reason): a retry
    must ask for the same. The JSON is that of ``dataclasses.asdict``, without its deep copy."""
    def plain(value):
        return vars(value) if is_dataclass(value) else str(value)

    fields = dict(vars(new), idempotency_key="", reason="")
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=plain).encode()).hexdigest()


def _version_is(version: ParamsVersion):
    return ParametersRow.major == version.major, ParametersRow.minor == version.minor


def _check_principal(principal: str) -> None:
    if not principal or len(principal) > 200 or not principal.isprintable() or principal != principal.strip():
        raise InvalidArgument("principal must be the principal's name: 1 to 200 printable characters, "
                              "no leading or trailing spaces", field="principal")


def _has_tags(have: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(have.get(k) == v for k, v in wanted.items())


def raise_too_big(size: int, limit: int) -> None:
    raise ResourceExhausted(
        f"the artifact ({size} bytes) is larger than the limit of {limit} bytes; ask an administrator "
        "to raise max_artifact_bytes or upload a smaller file")


def _check_signature(signature: Signature) -> None:
    for side, specs in (("inputs", signature.inputs), ("outputs", signature.outputs)):
        names = set()
        for spec in specs:
            field = f"signature.{side}"
            if not spec.name or len(spec.name) > 200 or not spec.name.isprintable():
                raise InvalidArgument(f"every tensor in signature.{side} needs a name of 1 to 200 "
                                      "printable characters", field=field)
            if spec.name in names:
                raise InvalidArgument(f"tensor {spec.name!r} appears twice in signature.{side}", field=field)
            names.add(spec.name)
            if spec.dtype not in DTYPES:
                raise InvalidArgument(f"tensor {spec.name!r} in signature.{side} needs a dtype", field=field)
            if any(d < -1 for d in spec.shape):
                raise InvalidArgument(f"tensor {spec.name!r} has a negative dimension; use -1 for a "
                                      "variable dimension", field=field)
