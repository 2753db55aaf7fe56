"""Settings of the inference service: environment variables BEAMOPS_INFERENCE_*, or flags.

Triton: with ``triton_url`` empty (the default), the service starts and supervises the bundled
Triton (``make triton`` installs it into ``triton_venv``) with its model repository under
``<var_dir>/triton-models``. With ``triton_url`` set (an external Triton, e.g. the official
container with a GPU), the service starts nothing and writes ``platform: "onnxruntime_onnx"``
models into ``triton_model_repository``, which that Triton must see at the same path and run with
``--model-control-mode=explicit``.

Gateway: the service starts and supervises beamops-gateway (the Go data plane, ``make gateway``
builds it), which answers every inference call: beamops Predict/PredictStream and Triton's
protocol on ``gateway_port``, REST on ``gateway_http_port``. It forwards every other
InferenceService call here, so its address is a complete InferenceService address; Predict
calls made to this service's own port are passed to it.

Registry: calls made for a caller (Deploy, Rollback, ...) forward the caller's token; background
work (restoring deployments at start, following aliases) uses ``registry_token``, which needs the
publisher role or higher (it writes audit events). ``make up`` is meant to create one and pass it
as ``BEAMOPS_INFERENCE_REGISTRY_TOKEN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import MiB, ServiceSettings

#: Where ``make gateway`` puts the binary: services/inference/gateway/bin/ (this package lives in
#: services/inference/beamops/inference/).
DEFAULT_GATEWAY_BINARY = Path(__file__).resolve().parents[2] / "gateway" / "bin" / "beamops-gateway"


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_INFERENCE_", extra="forbid")

    service_name: ClassVar[str] = "inference"
    port: int = 50054
    max_request_bytes: int = Field(64 * MiB, description="Largest request message accepted (at "
                                   "most max_message_bytes): Predict's tensors.")

    # --- Triton -------------------------------------------------------------------------------
    triton_url: str = Field("", description="host:port of an external Triton (gRPC); empty: "
                            "start the bundled one.")
    triton_model_repository: Path | None = Field(
        None, description="Model repository (default <var_dir>/triton-models; required with "
        "triton_url: the path the external Triton reads).")
    triton_venv: Path = Field(Path(".venv-triton"), description="The bundled Triton's venv "
                              "(made by services/inference/triton/install.sh).")
    triton_grpc_port: int = Field(0, description="Bundled Triton gRPC port; 0 picks a free one.")
    triton_http_port: int = Field(0, description="Bundled Triton HTTP port; 0 picks a free one.")
    triton_metrics_port: int = Field(0, description="Bundled Triton metrics port; 0: free one.")
    triton_start_timeout_s: float = Field(120.0, description="Time the bundled Triton gets to "
                                          "become ready.")
    triton_watch_interval_s: float = Field(1.0, description="How often the bundled Triton is "
                                           "checked (restarted if it died).")
    triton_load_timeout_s: float = Field(120.0, description="Client timeout of a model load.")
    triton_infer_timeout_s: float = Field(30.0, description="Longest a Predict waits for Triton, "
                                          "queueing for a coalesced call included.")
    intra_op_threads: int = Field(1, description="ONNX Runtime threads per model instance "
                                  "(bundled Triton).")
    coalesce_max_in_flight: int = Field(
        1, description="Calls to one batching Triton model in flight at once from the gateway; "
        "Predict requests arriving meanwhile are coalesced into one Triton call (then cut apart "
        "again). 0: no limit and no coalescing (Triton's dynamic batcher alone). Raise it for a "
        "Triton with spare capacity (several instances, a GPU) when the gateway is not CPU-bound.")
    default_max_batch_size: int = Field(64, description="max_batch_size when a Deploy leaves it 0 "
                                        "and the signature has a variable first dimension.")

    # --- Registry -----------------------------------------------------------------------------
    registry_address: str = Field("127.0.0.1:50051", description="host:port of the registry.")
    registry_token: SecretStr | None = Field(
        None, description="Token for background registry calls (restore, alias following, "
        "audit of automatic switches); publisher role or higher.")
    registry_timeout_s: float = Field(30.0, description="Deadline of one registry call.")
    alias_poll_interval_s: float = Field(5.0, description="How often aliases followed by "
                                         "deployments are resolved anyway (a safety net: moves "
                                         "arrive at once through the registry's WatchAliasEvents).")

    # --- Drift --------------------------------------------------------------------------------
    drift_tick_s: float = Field(1.0, description="How often deployments are checked for a drift "
                                "evaluation that is due (each has its own interval).")

    # --- Gateway (compiled data plane) ----------------------------------------------------------
    gateway_port: int = Field(0, description="Port the gateway listens on; 0 picks a free one "
                              "(`make up` uses 50055).")
    gateway_http_port: int = Field(0, ge=0, description="Port of the gateway's Open Inference "
                                   "Protocol REST front (Triton's HTTP API; `make up` uses 8000, as "
                                   "Triton); 0 picks a free one.")
    gateway_open_metadata: bool = Field(False, description="The gateway answers the Open Inference "
                                        "Protocol's setup calls (server and model metadata, model "
                                        "config, repository index, statistics) without credentials, "
                                        "as stock CMSSW SONIC makes them; inference always needs them.")
    gateway_config_checksums: bool = Field(False, description="ModelConfig on Triton's protocol names "
                                           "each artifact's sha256 as Triton's checksum repository "
                                           "agent does, so CMSSW SONIC jobs can pin what they run "
                                           "(SONIC then demands the same entries in its local "
                                           "config.pbtxt: off by default).")
    gateway_host: str = Field("", description="Address the gateway listens on (default: host).")
    gateway_binary: str = Field("", description="Path of the beamops-gateway binary (default: "
                                "services/inference/gateway/bin/beamops-gateway, built by "
                                "`make gateway`).")
    triton_in_gateway: bool = Field(
        True, description="With the bundled Triton: run Triton inside the "
        "gateway's process (its in-process library; a Predict through the gateway then makes no "
        "second gRPC hop) instead of as a tritonserver process of its own.")
    gateway_auth_cache_s: float = Field(5.0, ge=0, description="How long the gateway may reuse the "
                                        "answer about a caller's token (never past a JWT's exp).")
    gateway_drift_samples_per_s: int = Field(200, ge=0, description="Requests per deployment per second "
                                             "whose tensors the gateway sends for drift "
                                             "monitoring (at most).")

    @model_validator(mode="after")
    def _gateway_host_defaults_to_host(self):
        if not self.gateway_host:
            self.gateway_host = self.host
        return self

    @property
    def resolved_gateway_binary(self) -> Path:
        return Path(self.gateway_binary) if self.gateway_binary else DEFAULT_GATEWAY_BINARY

    @property
    def resolved_model_repository(self) -> Path:
        if self.triton_model_repository is not None:
            return self.triton_model_repository
        if self.triton_url:
            raise ValueError("triton_model_repository is required with triton_url")
        return self.var_dir / "triton-models"
