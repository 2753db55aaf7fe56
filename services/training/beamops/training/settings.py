"""Settings of the training service: environment variables BEAMOPS_TRAINING_*, or flags."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings


class TrainingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_TRAINING_", extra="forbid")

    service_name: ClassVar[str] = "training"
    port: int = 50053
