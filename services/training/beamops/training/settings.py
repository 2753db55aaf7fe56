"""Settings of the training service: environment variables BEAMOPS_TRAINING_*, or flags."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings


class TrainingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_TRAINING_", extra="forbid")

    service_name: ClassVar[str] = "training"
    port: int = 50053

    data_address: str = Field("127.0.0.1:50052", description="host:port of the data service.")
    registry_address: str = Field("127.0.0.1:50051", description="host:port of the registry.")
    service_token: str | None = Field(
        None,
        description=(
            "Bearer token used to call the data service and the registry when the caller's own "
            "token cannot be forwarded (auth disabled on this service). By default the caller's "
            "token is forwarded, so the data and registry access rules apply to the submitter."
        ),
    )
    dask_scheduler: str | None = Field(
        None,
        description="Dask scheduler address (tcp://host:8786, tls://host:8786 with the dask_tls_* "
                    "files). Set: jobs run on Dask by default.",
    )
    dask_tls_ca_file: Path | None = Field(
        None, description="PEM CA of the Dask cluster: connect to a tls:// scheduler with mutual TLS "
                          "(with dask_tls_cert_file and dask_tls_key_file; Dask's own credentials, "
                          "compose.yaml's dask-init job makes them). Unset: plain tcp:// (local dev).")
    dask_tls_cert_file: Path | None = Field(
        None, description="PEM certificate this service presents to the Dask scheduler (client role).")
    dask_tls_key_file: Path | None = Field(None, description="PEM private key of dask_tls_cert_file.")
    max_concurrent_jobs: int = Field(2, ge=1, description="Jobs running at once; others stay QUEUED.")
    cancel_grace_s: float = Field(
        5.0, ge=0, description="Time a cancelled local worker gets to stop before it is killed."
    )
    event_poll_interval_s: float = Field(0.2, gt=0, description="How often worker events are read.")
    entry_point_modules: list[str] = Field(
        default_factory=lambda: ["beamops.training.examples"],
        description="Packages whose model classes users may train by entry point "
                    "('package.module:Class'); importing a module runs its code, so list only "
                    "packages you trust.")
    max_trials: int = Field(256, ge=1, description="Largest hyperparameter search accepted (trials).")
    local_trial_workers: int = Field(
        2, ge=1, description="Search trials running at once on the local executor (one worker "
                             "subprocess each); on Dask, trials run on as many threads as the cluster has.")
    job_memory_limit_bytes: int = Field(
        4 * 1024**3, ge=0,
        description="Memory one local worker process (a job, or one trial of a search) may use: its "
                    "private writable memory (RLIMIT_DATA; reserved-but-unused address space does not "
                    "count, each thread's 8 MiB stack does: on many cores, mind the BLAS/OpenMP threads "
                    "or set OMP_NUM_THREADS). Beyond it allocations fail and the job FAILS naming "
                    "this limit. On Dask it is requested as the MEMORY resource when the workers "
                    "declare one; otherwise the Dask workers' own memory limit applies. 0: no limit.")
    job_cpu_limit_s: float = Field(
        48 * 3600.0, ge=0,
        description="CPU time one local worker process may use (RLIMIT_CPU, all its threads together: "
                    "8 busy threads use 8 s per second). Beyond it the job FAILS naming this limit. "
                    "Not enforced on Dask (tasks share the workers' threads). 0: no limit.")
    job_timeout_s: float = Field(
        6 * 3600.0, gt=0,
        description="Wall-clock time a job may run (from RUNNING; a search: all its trials) when its "
                    "spec sets no timeout; then it is stopped and FAILS. Enforced by this service on "
                    "both executors.")
    max_job_timeout_s: float = Field(
        48 * 3600.0, gt=0,
        description="Longest timeout a job spec may ask for; a longer one is refused at submit.")
    max_queued_jobs_per_user: int = Field(
        20, ge=1,
        description="Unfinished jobs (queued or running) one user may have; a search counts as one "
                    "job (its trials run inside its slot). Beyond it SubmitJob is RESOURCE_EXHAUSTED.")
    max_queued_jobs: int = Field(
        200, ge=1, description="Unfinished jobs (queued or running) of all users together; beyond it "
                               "SubmitJob is RESOURCE_EXHAUSTED.")

    @model_validator(mode="after")
    def _dask_tls_complete(self) -> "TrainingSettings":
        files = (self.dask_tls_ca_file, self.dask_tls_cert_file, self.dask_tls_key_file)
        if any(files) and not all(files):
            raise ValueError("dask_tls_ca_file, dask_tls_cert_file and dask_tls_key_file go together: "
                             "Dask checks certificates on both ends of every connection")
        if self.dask_scheduler and all(files) and not self.dask_scheduler.startswith("tls://"):
            raise ValueError("with the dask_tls_* files, dask_scheduler must be a tls:// address")
        if self.dask_scheduler and self.dask_scheduler.startswith("tls://") and not all(files):
            raise ValueError("a tls:// dask_scheduler needs dask_tls_ca_file, dask_tls_cert_file and "
                             "dask_tls_key_file")
        if self.job_timeout_s > self.max_job_timeout_s:
            raise ValueError("job_timeout_s (the default timeout) must not be longer than max_job_timeout_s")
        return self

    def dask_security(self):
        """The ``distributed.Security`` of the Dask client (None: plain tcp, local dev); its files
        are read here, so a missing or bad one stops the service at start, not at the first job."""
        if self.dask_tls_ca_file is None:
            return None
        from distributed import Security

        security = Security(require_encryption=True, tls_ca_file=str(self.dask_tls_ca_file),
                            tls_client_cert=str(self.dask_tls_cert_file),
                            tls_client_key=str(self.dask_tls_key_file))
        security.get_connection_args("client")  # loads the CA, certificate and key now
        return security

    @property
    def database_path(self) -> Path:
        return self.var_dir / "training.db"

    @property
    def jobs_dir(self) -> Path:
        return self.var_dir / "jobs"
