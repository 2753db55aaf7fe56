"""Settings of the data service: environment variables BEAMOPS_DATA_*, or flags."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from beamops.runtime.settings import MiB, ServiceSettings


class DataSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BEAMOPS_DATA_", extra="forbid")

    service_name: ClassVar[str] = "data"
    port: int = 50052
    max_request_bytes: int = Field(16 * MiB, description="Largest request message accepted (at "
                                   "most max_message_bytes): a dataset's list of sources.")

    data_roots: list[Path] = Field(
        default_factory=list,
        description="Folders that local sources are relative to; nothing outside them is read.",
    )
    remote_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Hosts that root:// and https:// sources may name: 'host', 'host:port' or "
            "'*.domain' (e.g. eospublic.cern.ch, 127.0.0.1:1094). Empty: no remote source."
        ),
    )
    allow_http: bool = Field(
        False, description="Also accept plain http:// sources (tests, trusted networks only)."
    )
    hash_chunk_bytes: int = Field(4 * MiB, description="Read size when hashing files (>= 1 MiB).")
    default_batch_size: int = Field(100_000, description="Entries per streamed batch by default.")
    max_batch_size: int = Field(1_000_000, description="Largest batch a reader may ask for.")
    remote_timeout_s: float = Field(30.0, description="Timeout of one remote read or open.")

    @property
    def database_path(self) -> Path:
        return self.var_dir / "data.db"

    @property
    def artifacts_path(self) -> Path:
        """The service's own files (Parquet conversions), content-addressed."""
        return self.var_dir / "artifacts"
