"""The project's proto files and services, loaded from the generated Python modules."""

from __future__ import annotations

import importlib
from pathlib import Path

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

PROTOS = Path(__file__).resolve().parent.parent / "protos"


def proto_files() -> list[FileDescriptor]:
    files = []
    for path in sorted(PROTOS.rglob("*.proto")):
        module = ".".join(path.relative_to(PROTOS).with_suffix("").parts) + "_pb2"
        files.append(importlib.import_module(module).DESCRIPTOR)
    return files


def services() -> list[ServiceDescriptor]:
    return [s for f in proto_files() for s in f.services_by_name.values()]


#: Services only beamops' own processes call (the inference service and its gateway); the
#: security tests that try every client-facing service skip them (they have tests of their own).
INTERNAL_SERVICES = {"GatewayService"}


def public_services() -> list[ServiceDescriptor]:
    """The services clients call."""
    return [s for s in services() if s.name not in INTERNAL_SERVICES]


def grpc_module(service: ServiceDescriptor):
    """The generated ``*_pb2_grpc`` module that holds ``service``'s stub."""
    return importlib.import_module(service.file.name[: -len(".proto")].replace("/", ".") + "_pb2_grpc")
