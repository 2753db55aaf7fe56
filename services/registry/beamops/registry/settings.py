"""Settings of the registry service: environment variables BEAMOPS_REGISTRY_*, or flags."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings

GiB = 1024**3


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_REGISTRY_", extra="forbid")

    service_name: ClassVar[str] = "registry"
    port: int = 50051
    database_url: str = Field(
        "", description="SQLAlchemy URL: sqlite:///<path> or postgresql+psycopg://user:pw@host:port/db "
        "(default sqlite:///<var_dir>/registry.db)."
    )
    artifacts_dir: Path | None = Field(None, description="Artifact blobs (default <var_dir>/artifacts).")
    max_artifact_bytes: int = Field(2 * GiB, description="Largest artifact accepted by UploadArtifact.")

    @property
    def resolved_database_url(self) -> str:
        from .store import sqlite_url  # noqa: PLC0415 - keep settings free of SQL imports at load

        return self.database_url or sqlite_url(self.var_dir)

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.var_dir / "artifacts"
