"""TLS and mutual TLS on a real service, through the SDK: the settings every service shares."""

from __future__ import annotations

import asyncio

import pytest

import beamops
from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings

from tests.fixtures.services import running


def get_model(address: str, token: str, **tls):
    with beamops.Client(token, registry_address=address, **tls) as client:
        return client.registry.get_model("no-such-model")


def create_model(address: str, token: str, **tls):
    # A write fails at once when no connection can be made (reads wait for their deadline).
    with beamops.Client(token, registry_address=address, **tls) as client:
        return client.registry.create_model("tls-model")


async def call(address, token, **tls):
    return await asyncio.to_thread(get_model, address, token, **tls)


async def write(address, token, **tls):
    return await asyncio.to_thread(create_model, address, token, **tls)


async def test_tls_serves_only_clients_that_trust_it(tmp_path, tokens, certificates):
    settings = RegistrySettings(port=0, var_dir=tmp_path, tokens_file=tokens.path,
                                tls_cert_file=certificates.server_cert, tls_key_file=certificates.server_key)
    async with running(create_server, settings) as (server, _):
        address = f"127.0.0.1:{server.port}"
        with pytest.raises(beamops.NotFoundError):  # reached the registry over TLS
            await call(address, tokens.reader, ca_file=str(certificates.ca))
        with pytest.raises(beamops.UnavailableError):  # plaintext is refused
            await write(address, tokens.publisher)


async def test_mutual_tls_requires_a_client_certificate(tmp_path, tokens, certificates):
    settings = RegistrySettings(port=0, var_dir=tmp_path, tokens_file=tokens.path,
                                tls_cert_file=certificates.server_cert, tls_key_file=certificates.server_key,
                                tls_client_ca_file=certificates.ca)
    async with running(create_server, settings) as (server, _):
        address = f"127.0.0.1:{server.port}"
        with pytest.raises(beamops.NotFoundError):
            await call(address, tokens.reader, ca_file=str(certificates.ca),
                       client_cert_file=str(certificates.client_cert), client_key_file=str(certificates.client_key))
        with pytest.raises(beamops.UnavailableError):  # no client certificate
            await write(address, tokens.publisher, ca_file=str(certificates.ca))
        with pytest.raises(beamops.AuthenticationError):  # a certificate does not replace the token
            await call(address, "bmo_wrong", ca_file=str(certificates.ca),
                       client_cert_file=str(certificates.client_cert), client_key_file=str(certificates.client_key))


def test_half_configured_tls_is_refused(tmp_path):
    from beamops.runtime.server import server_credentials

    with pytest.raises(ValueError, match="both"):
        server_credentials(RegistrySettings(port=0, var_dir=tmp_path, tls_cert_file=tmp_path / "x.pem"))
    with pytest.raises(ValueError, match="tls_cert_file"):
        server_credentials(RegistrySettings(port=0, var_dir=tmp_path, tls_client_ca_file=tmp_path / "ca.pem"))
