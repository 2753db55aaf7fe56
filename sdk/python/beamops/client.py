"""The entry point of the SDK: ``beamops.Client``.

>>> import beamops
>>> client = beamops.Client()                # token and addresses from env or `make up`'s config
>>> client.stub("registry").GetModel(...)    # the raw gRPC stub, for anything not wrapped yet

High-level helpers return Python objects, numpy and awkward arrays; errors are
:mod:`beamops.errors` exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from beamops.data.v1 import data_service_pb2_grpc
from beamops.inference.v1 import inference_service_pb2_grpc
from beamops.registry.v1 import registry_service_pb2_grpc
from beamops.training.v1 import training_service_pb2_grpc

from .channels import channel_credentials, open_channel
from .config import SERVICES, Connection

if TYPE_CHECKING:
    from .api.data import DataAPI
    from .api.inference import InferenceAPI
    from .api.registry import RegistryAPI
    from .api.training import TrainingAPI

_STUBS = {
    "registry": registry_service_pb2_grpc.RegistryServiceStub,
    "data": data_service_pb2_grpc.DataServiceStub,
    "training": training_service_pb2_grpc.TrainingServiceStub,
    "inference": inference_service_pb2_grpc.InferenceServiceStub,
}


class Client:
    """A connection to a beamops platform. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, token: str | None = None, *, registry_address: str | None = None,
                 data_address: str | None = None, training_address: str | None = None,
                 inference_address: str | None = None, ca_file: str | None = None,
                 client_cert_file: str | None = None, client_key_file: str | None = None) -> None:
        self.connection = Connection.resolve(
            token, registry_address=registry_address, data_address=data_address,
            training_address=training_address, inference_address=inference_address,
            ca_file=ca_file, client_cert_file=client_cert_file, client_key_file=client_key_file,
        )
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, Any] = {}

    def stub(self, service: str) -> Any:
        """The generated gRPC stub of ``service`` (registry, data, training, inference)."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
        if service not in self._stubs:
            c = self.connection
            credentials = channel_credentials(c.ca_file, c.client_cert_file, c.client_key_file)
            channel = open_channel(service, c.address(service), c.token, credentials)
            self._channels[service] = channel
            self._stubs[service] = _STUBS[service](channel)
        return self._stubs[service]

    @property
    def registry(self) -> "RegistryAPI":
        """Models, parameters versions, aliases, intervals of validity, lineage, audit."""
        from .api.registry import RegistryAPI

        return RegistryAPI(self.stub("registry"))

    @property
    def data(self) -> "DataAPI":
        """ROOT datasets: register, split, read as Arrow / numpy / awkward / pandas."""
        from .api.data import DataAPI

        stub = self.stub("data")
        return DataAPI(stub, self._channels["data"])

    @property
    def training(self) -> "TrainingAPI":
        """Training jobs: submit, follow, cancel, reproduce."""
        from .api.training import TrainingAPI

        return TrainingAPI(self.stub("training"))

    @property
    def inference(self) -> "InferenceAPI":
        """Deployments onto Triton, predictions, drift."""
        from .api.inference import InferenceAPI

        return InferenceAPI(self.stub("inference"))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._stubs.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
