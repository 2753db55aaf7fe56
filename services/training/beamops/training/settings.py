"""Settings of the training service: environment variables BEAMOPS_TRAINING_*, or flags."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
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
        description="Dask scheduler address (tcp://host:8786). Set: jobs run on Dask by default.",
    )
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

    @property
    def database_path(self) -> Path:
        return self.var_dir / "training.db"

    @property
    def jobs_dir(self) -> Path:
        return self.var_dir / "jobs"
