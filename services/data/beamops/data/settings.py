"""Settings of the data service: environment variables BEAMOPS_DATA_*, or flags."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings


class DataSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_DATA_", extra="forbid")

    service_name: ClassVar[str] = "data"
    port: int = 50052
