"""Settings of the inference service: environment variables BEAMOPS_INFERENCE_*, or flags."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_INFERENCE_", extra="forbid")

    service_name: ClassVar[str] = "inference"
    port: int = 50054
