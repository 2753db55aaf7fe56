"""Settings of the registry service: environment variables BEAMOPS_REGISTRY_*, or flags."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import ServiceSettings

from .s3_location import S3Location, check_endpoint_url

GiB = 1024**3


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_REGISTRY_", extra="forbid")

    service_name: ClassVar[str] = "registry"
    port: int = 50051
    database_url: str = Field(
        "", description="SQLAlchemy URL: sqlite:///<path> or postgresql+psycopg://user:pw@host:port/db "
        "(default sqlite:///<var_dir>/registry.db)."
    )
    artifacts_dir: Path | None = Field(
        None, description="Artifact blobs (default <var_dir>/artifacts); with an S3 artifact_store, only the "
        "staging folder of uploads in progress (<artifacts_dir>/tmp).")
    artifact_store: str = Field(
        "", description="Where artifact blobs live: empty = the local folder artifacts_dir; "
        "s3://<bucket>[/<prefix>] = an S3-compatible bucket, which must exist (credentials from the standard "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables, region from AWS_DEFAULT_REGION).")
    s3_endpoint_url: str = Field(
        "", description="Endpoint of an S3-compatible server (SeaweedFS, MinIO, Ceph): http(s)://host:port; "
        "empty = AWS S3.")
    max_artifact_bytes: int = Field(2 * GiB, description="Largest artifact accepted by UploadArtifact.")

    @field_validator("artifact_store")
    @classmethod
    def _check_artifact_store(cls, value: str) -> str:
        value = value.strip()
        if value:
            S3Location.parse(value)
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_s3_endpoint_url(cls, value: str) -> str:
        return check_endpoint_url(value.strip())

    @property
    def resolved_database_url(self) -> str:
        from .store import sqlite_url  # noqa: PLC0415 - keep settings free of SQL imports at load

        return self.database_url or sqlite_url(self.var_dir)

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.var_dir / "artifacts"
