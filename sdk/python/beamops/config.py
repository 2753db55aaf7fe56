"""Where the SDK and CLI find the services and the token.

In order: arguments given in code, then environment variables (``BEAMOPS_TOKEN``,
``BEAMOPS_REGISTRY_ADDRESS``, ``BEAMOPS_DATA_ADDRESS``, ``BEAMOPS_TRAINING_ADDRESS``,
``BEAMOPS_INFERENCE_ADDRESS``; for TLS ``BEAMOPS_CA_FILE``, and for mutual TLS
``BEAMOPS_CLIENT_CERT_FILE`` and ``BEAMOPS_CLIENT_KEY_FILE``), then the config file that ``make up`` writes
(``~/.config/beamops/config.json``, or the file named by ``BEAMOPS_CONFIG``), then localhost
defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

SERVICES = ("registry", "data", "training", "inference")
DEFAULT_ADDRESSES = {
    "registry": "127.0.0.1:50051",
    "data": "127.0.0.1:50052",
    "training": "127.0.0.1:50053",
    "inference": "127.0.0.1:50054",
}


def config_path() -> Path:
    if "BEAMOPS_CONFIG" in os.environ:
        return Path(os.environ["BEAMOPS_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "beamops" / "config.json"


@dataclass(frozen=True)
class Connection:
    """Addresses of the four services and the bearer token."""

    token: str | None
    registry_address: str
    data_address: str
    training_address: str
    inference_address: str
    # TLS: the CA that signed the services' certificates (None: plaintext), and for mutual TLS
    # this client's certificate and key.
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None

    def address(self, service: str) -> str:
        return getattr(self, f"{service}_address")

    @classmethod
    def resolve(cls, token: str | None = None, **addresses: str | None) -> "Connection":
        """Merge arguments, environment, config file and defaults (in that order of precedence)."""
        try:
            stored = json.loads(config_path().read_text())
        except (OSError, ValueError):
            stored = {}
        values: dict[str, str | None] = {}
        for service in SERVICES:
            key = f"{service}_address"
            values[key] = (
                addresses.get(key) or os.environ.get(f"BEAMOPS_{service.upper()}_ADDRESS")
                or stored.get(key) or DEFAULT_ADDRESSES[service]
            )
        values["token"] = token or os.environ.get("BEAMOPS_TOKEN") or stored.get("token")
        for key in ("ca_file", "client_cert_file", "client_key_file"):
            values[key] = addresses.get(key) or os.environ.get(f"BEAMOPS_{key.upper()}") or stored.get(key)
        return cls(**values)

    def with_token(self, token: str) -> "Connection":
        return replace(self, token=token)
