"""Settings of the registry service: environment variables BEAMOPS_REGISTRY_*, or flags."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_REGISTRY_", extra="forbid")

    service_name: ClassVar[str] = "registry"
    port: int = 50051
