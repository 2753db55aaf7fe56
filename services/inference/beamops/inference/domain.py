"""The inference service's own types: deployments, what they serve, what callers ask of them,
drift and alerts.

Plain pydantic models and dataclasses (persisted as JSON by the store, converted to and from
protobuf in ``convert.py``). No gRPC here. Dtypes are ``beamops.common.v1.DataType`` numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class State(str, enum.Enum):
    PENDING = "PENDING"
    LOADING = "LOADING"
    READY = "READY"
    SWITCHING = "SWITCHING"
    FAILED = "FAILED"
    UNLOADING = "UNLOADING"


SERVING_STATES = (State.READY, State.SWITCHING)


@dataclass(frozen=True, slots=True)
class RawTensor:
    """A tensor on the Predict path: DataType number, shape, raw little-endian bytes (no copy
    into numpy; arrays are made only where needed, e.g. for drift)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    data: bytes


class TensorSig(BaseModel):
    name: str
    dtype: int
    shape: tuple[int, ...]


class Signature(BaseModel):
    inputs: tuple[TensorSig, ...] = ()
    outputs: tuple[TensorSig, ...] = ()

    @property
    def batched(self) -> bool:
        """Every tensor has a variable first dimension: Triton may batch it."""
        tensors = self.inputs + self.outputs
        return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


class FeatureReference(BaseModel):
    """A reference distribution stored with a parameters version (registry FeatureDistribution)."""

    feature: str
    bin_edges: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()
    quantile_levels: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()
    count: int = 0


class ResolvedVersion(BaseModel):
    """A parameters version as the registry describes it."""

    model: str
    version: str
    model_type_version: str = ""
    artifact_id: str = ""
    sha256: str = ""
    signature: Signature = Signature()
    references: tuple[FeatureReference, ...] = ()
    moved_by: str = ""  # for an alias: who moved it last


class ServedVersion(BaseModel):
    """A version loaded (or once loaded) into Triton for a deployment."""

    version: str
    model_type_version: str = ""
    artifact_id: str = ""
    sha256: str = ""
    signature: Signature = Signature()
    references: tuple[FeatureReference, ...] = ()
    triton_name: str = ""


class TargetKind(str, enum.Enum):
    VERSION = "version"
    ALIAS = "alias"
    GLOBAL_TAG_RUN = "global_tag_run"


class Target(BaseModel):
    kind: TargetKind
    value: str  # version, alias or global tag name
    run: int = 0


class ServingConfig(BaseModel):
    max_batch_size: int = 0
    instance_count: int = 0
    dynamic_batching_disabled: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int | None = None


class Thresholds(BaseModel):
    disabled: bool = False
    psi: float = 0.2
    ks_statistic: float = 0.1
    window_size: int = 10000
    min_samples: int = 1000
    evaluation_interval_s: float = 10.0


class Deployment(BaseModel):
    name: str
    model: str
    target: Target
    following_alias: bool = False
    current: ServedVersion | None = None
    previous: ServedVersion | None = None
    next_version: str = ""
    state: State = State.PENDING
    state_message: str = ""
    serving_since: datetime | None = None
    created_by: str = ""
    create_time: datetime = Field(default_factory=utcnow)
    changed_by: str = ""
    change_reason: str = ""
    serving: ServingConfig = ServingConfig()
    thresholds: Thresholds = Thresholds()
    generation: int = 0


# ---- what callers ask of the control plane --------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    """Who asks: their principal name, and the authorization value to forward to the registry."""

    name: str
    auth: str | None


@dataclass
class DeployCommand:
    model: str
    target: Target | None
    name: str = ""
    serving: ServingConfig = field(default_factory=ServingConfig)
    thresholds: Thresholds = field(default_factory=Thresholds)
    replace: bool = False
    return_immediately: bool = False
    reason: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True)
class Route:
    """Which deployment a Predict wants: a name, or a model narrowed by version/alias/run."""

    deployment: str = ""
    model: str = ""
    version: str = ""
    alias: str = ""
    global_tag: str = ""
    run: int | None = None


class FeatureKind(str, enum.Enum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class FeatureDrift(BaseModel):
    kind: FeatureKind
    tensor: str
    index: int
    feature: str = ""
    available: bool = False
    unavailable_reason: str = ""
    psi: float = 0.0
    ks_statistic: float = 0.0
    ks_p_value: float = 0.0
    psi_exceeded: bool = False
    ks_exceeded: bool = False
    sample_count: int = 0


class DriftReport(BaseModel):
    deployment: str
    model: str
    version: str = ""
    available: bool = False
    unavailable_reason: str = ""
    compute_time: datetime = Field(default_factory=utcnow)
    window_size: int = 0
    window_samples: int = 0
    window_start_time: datetime | None = None
    window_end_time: datetime | None = None
    reference_sample_count: int = 0
    thresholds: Thresholds = Thresholds()
    drifting: bool = False
    features: tuple[FeatureDrift, ...] = ()


class AlertKind(str, enum.Enum):
    DRIFT = "DRIFT"
    DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class AlertState(str, enum.Enum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


class Alert(BaseModel):
    alert_id: str
    kind: AlertKind
    severity: Severity
    state: AlertState = AlertState.FIRING
    deployment: str = ""
    model: str = ""
    version: str = ""
    summary: str = ""
    feature_drift: FeatureDrift | None = None
    fire_time: datetime = Field(default_factory=utcnow)
    resolve_time: datetime | None = None
    key: str = ""  # what makes two alerts "the same condition" (deployment/kind/feature)


# ---- the gateway (compiled data plane) -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """What the gateway needs to serve one deployment's Predict itself."""

    deployment: str
    model: str
    parameters_version: str
    triton_model: str
    signature: Signature
    max_batch_size: int  # Triton's; 0 when it does not batch
    drift: bool  # the deployment watches drift: the gateway sends samples
    following_alias: str = ""  # the alias the deployment moves with, if any
    artifact_sha256: str = ""  # of the served version's artifact


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One request the gateway served: the inputs as checked (shaped as Triton wants) and the
    outputs as returned to the caller."""

    inputs: tuple[RawTensor, ...]
    outputs: tuple[RawTensor, ...]


@dataclass(frozen=True, slots=True)
class DeploymentUsage:
    """One deployment's (and parameters version's) traffic through the gateway in one report."""

    deployment: str
    version: str
    requests: int = 0
    errors: tuple[tuple[str, int], ...] = ()  # (reason, count)
    latency_s: tuple[float, ...] = ()
    batch_rows: tuple[int, ...] = ()
    samples: tuple[UsageSample, ...] = ()
    coalesced: int = 0  # requests that shared a Triton call with others
