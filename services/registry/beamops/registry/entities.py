"""The registry's own types: what the domain logic takes and returns (no protobuf, no SQL).

Free-form structures that only travel through (code references, software environments,
reference distributions) are kept as JSON-compatible dicts in the protobuf JSON mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from beamops.runtime.auth import Principal

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "bytes")

ARTIFACT_FORMATS = ("onnx", "hls4ml_archive", "torchscript", "firmware_report", "safetensors", "other")
FRAMEWORKS = ("onnx", "sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "hls4ml", "other")
IOV_KINDS = ("run", "timestamp", "run_lumi")


@dataclass(frozen=True)
class Caller:
    """Who makes a call (for permissions and the audit log) and its request id."""

    principal: Principal
    request_id: str = ""

    @property
    def name(self) -> str:
        return self.principal.name


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # one of DTYPES
    shape: tuple[int, ...]  # -1 marks a variable dimension
    description: str = ""


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.inputs and not self.outputs


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    owner: str
    tags: dict[str, str]
    create_time: datetime
    update_time: datetime
    restricted: bool = False


@dataclass(frozen=True)
class ModelPermission:
    """A grant: ``principal`` may change ``model`` up to ``role`` (a Role value)."""

    model: str
    principal: str
    role: int
    granted_by: str
    grant_time: datetime


@dataclass(frozen=True)
class ModelType:
    model: str
    version: str
    signature: Signature
    framework: str
    code: dict[str, Any]
    description: str
    created_by: str
    create_time: datetime


@dataclass(frozen=True)
class Artifact:
    artifact_id: str
    model: str
    format: str
    filename: str
    sha256: str
    size_bytes: int
    signature: Signature | None
    created_by: str
    create_time: datetime


@dataclass(frozen=True)
class DatasetRef:
    dataset: str
    version_id: str
    content_hash: str = ""
    split: str = ""


@dataclass(frozen=True)
class ParametersRef:
    model: str
    version: str


@dataclass(frozen=True)
class Lineage:
    datasets: tuple[DatasetRef, ...] = ()
    training_job_id: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    code: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    parents: tuple[ParametersRef, ...] = ()


@dataclass(frozen=True)
class NewParameters:
    """What a client gives to register parameters; the registry picks the version."""

    model: str
    model_type_version: str
    primary_artifact_id: str = ""
    derived_artifact_ids: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    reference_distributions: tuple[dict[str, Any], ...] = ()
    idempotency_key: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ParametersVersion:
    model: str
    version: str
    model_type_version: str
    primary_artifact: Artifact | None
    derived_artifacts: tuple[Artifact, ...]
    metrics: dict[str, float]
    lineage: Lineage
    description: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created_by: str
    create_time: datetime
    reference_distributions: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ParametersQuery:
    """Filters and order of ListParametersVersions."""

    model: str = ""
    name_prefix: str = ""
    model_type_version: str = ""
    alias: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    metric_ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    dataset_version_id: str = ""
    order: str = "create_time_desc"  # create_time_desc|create_time_asc|metric_desc|metric_asc
    order_metric: str = ""


@dataclass(frozen=True)
class Alias:
    model: str
    name: str
    version: str
    protected: bool
    updated_by: str
    update_time: datetime


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    from_version: str
    to_version: str
    actor: str
    reason: str
    event_time: datetime


@dataclass(frozen=True)
class IovTag:
    name: str
    model: str
    kind: str  # "run", "run_lumi" (run << 32 | lumi) or "timestamp"
    description: str
    created_by: str
    create_time: datetime


@dataclass(frozen=True)
class IovEntry:
    tag: str
    since: int
    parameters: ParametersRef
    created_by: str
    reason: str
    create_time: datetime  # the insertion time: strictly increasing within a tag


@dataclass(frozen=True)
class GlobalTag:
    name: str
    tags: tuple[str, ...]
    description: str
    created_by: str
    create_time: datetime


@dataclass(frozen=True)
class AuditEvent:
    event_id: int
    event_time: datetime
    actor: str
    action: str
    model: str
    resource: str
    reason: str
    details: dict[str, str]
    request_id: str


@dataclass(frozen=True)
class AuditQuery:
    model: str = ""
    actor: str = ""
    action_prefix: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class Page:
    """A page of results and the token of the next page ("" on the last)."""

    items: list
    next_page_token: str = ""


@dataclass(frozen=True)
class LineageReport:
    """The whole lineage of a version: its chain of parents, alias moves and IOV entries."""

    chain: list[ParametersVersion]
    alias_events: list[AliasEvent]
    iov_entries: list[IovEntry]
