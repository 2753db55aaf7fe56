"""The API conventions of DESIGN.md hold for every proto file, service, RPC and enum."""

from __future__ import annotations

import re

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from tests.protos import proto_files, services

FILES = proto_files()
SERVICES = services()
METHODS = [m for s in SERVICES for m in s.methods]
AREAS = {"common", "registry", "data", "training", "inference"}


def upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def all_messages(container):
    for message in container.message_types_by_name.values():
        yield message
        yield from _nested(message)


def _nested(message):
    for nested in message.nested_types:
        yield nested
        yield from _nested(nested)


def all_enums(file):
    yield from file.enum_types_by_name.values()
    for message in all_messages(file):
        yield from message.enum_types


def test_every_area_has_contracts():
    assert {f.package.split(".")[1] for f in FILES} == AREAS
    assert {s.name for s in SERVICES} == {
        "RegistryService", "DataService", "TrainingService", "InferenceService",
        "GatewayService",  # internal: the inference service and its compiled data plane
    }


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_package_matches_path(file):
    parts = file.name.split("/")
    assert parts[0] == "beamops" and parts[2] == "v1" and len(parts) == 4, file.name
    assert file.package == ".".join(parts[:3]), f"{file.name}: package {file.package}"


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_language_options(file):
    area = file.package.split(".")[1]
    options = file.GetOptions()
    assert options.go_package.endswith(f"/gen/beamops/{area}/v1;{area}v1"), options.go_package
    assert options.java_package == f"dev.beamops.{area}.v1"
    assert options.java_multiple_files


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.full_name)
def test_service_naming(service):
    assert service.name.endswith("Service")
    area = service.file.package.split(".")[1]
    internal = {"GatewayService": "gateway_service.proto"}
    assert service.file.name.endswith("/" + internal.get(service.name, f"{area}_service.proto"))


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_request_response_naming(method):
    assert method.input_type.name == f"{method.name}Request"
    assert method.output_type.name == f"{method.name}Response"
    assert method.input_type.file == method.containing_service.file


def test_request_and_response_messages_are_not_shared():
    used = [m.input_type.full_name for m in METHODS] + [m.output_type.full_name for m in METHODS]
    assert len(used) == len(set(used))


@pytest.mark.parametrize(
    "method", [m for m in METHODS if m.name.startswith("List")], ids=lambda m: m.full_name
)
def test_list_rpcs_paginate(method):
    request_fields = method.input_type.fields_by_name
    assert request_fields["page_size"].type == FieldDescriptor.TYPE_INT32
    assert request_fields["page_token"].type == FieldDescriptor.TYPE_STRING
    assert method.output_type.fields_by_name["next_page_token"].type == FieldDescriptor.TYPE_STRING


@pytest.mark.parametrize(
    "method",
    [m for m in METHODS if re.match(r"(Get|List|Resolve)[A-Z]", m.name)],
    ids=lambda m: m.full_name,
)
def test_reads_declare_no_side_effects(method):
    level = method.GetOptions().idempotency_level
    assert level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, method.full_name


@pytest.mark.parametrize(
    "enum", [e for f in FILES for e in all_enums(f)], ids=lambda e: e.full_name
)
def test_enum_values_are_prefixed_and_start_unspecified(enum):
    prefix = upper_snake(enum.name)
    assert enum.values[0].name == f"{prefix}_UNSPECIFIED" and enum.values[0].number == 0
    for value in enum.values:
        assert value.name.startswith(prefix + "_"), f"{enum.full_name}.{value.name}"


@pytest.mark.parametrize(
    "message", [m for f in FILES for m in all_messages(f)], ids=lambda m: m.full_name
)
def test_times_are_timestamps_and_names_are_snake_case(message):
    for field in message.fields:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", field.name), f"{message.full_name}.{field.name}"
        if field.name.endswith("_time") and field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type.full_name == "google.protobuf.Timestamp"
        if field.name.endswith("_time"):
            assert field.type == FieldDescriptor.TYPE_MESSAGE, f"{message.full_name}.{field.name}"


@pytest.mark.parametrize(
    "message", [m for f in FILES for m in all_messages(f)], ids=lambda m: m.full_name
)
def test_no_float_lists_for_tensors(message):
    if message.name in ("Tensor",):
        assert message.fields_by_name["raw_data"].type == FieldDescriptor.TYPE_BYTES
    for field in message.fields:
        if field.message_type is not None and field.message_type.name == "Tensor":
            assert field.message_type.full_name == "beamops.common.v1.Tensor"
