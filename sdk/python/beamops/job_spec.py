"""Training job specs written in YAML: :func:`load_job_spec` turns one into a ``JobSpec``.

The YAML holds the fields of ``beamops.training.v1.JobSpec`` (protos/beamops/training/v1/job.proto)
by their names, with a few conveniences for people writing it by hand:

- enum values may be written short and in lower case: ``builtin: gradient_boosted_trees``,
  ``task: regression``, ``executor: dask``, ``algorithm: grid``, ``direction: maximize`` (the full
  names, e.g. ``TASK_REGRESSION``, work too);
- ``timeout`` may be a number of seconds or a text like ``90s``, ``30m``, ``2h``;
- ``hyperparameters`` is free-form (numbers, text, lists), search ``values`` a plain list.

Every mistake is a :class:`JobSpecError` naming the key at fault (``model.builtin``,
``search.parameters[0].rnage``) and, for a misspelt key, the closest known one. A full example
is in ``examples/jobs/zmumu_gbt.yaml`` and the training service's README.

>>> spec = load_job_spec("examples/jobs/zmumu_gbt.yaml")
>>> spec.model.task == job_pb2.TASK_REGRESSION
True
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Mapping

from google.protobuf import descriptor as _descriptor, json_format

from beamops.errors import InvalidArgumentError
from beamops.training.v1 import job_pb2

FREE_FORM = {"google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Value"}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*$")


class JobSpecError(InvalidArgumentError, ValueError):
    """The YAML is not a valid job spec; ``field`` names the key at fault (empty: the whole)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def load_job_spec(path_or_text: str | os.PathLike | Mapping[str, Any]) -> job_pb2.JobSpec:
    """A ``JobSpec`` from a YAML file (a path), YAML text, or an already loaded mapping."""
    import yaml

    if isinstance(path_or_text, Mapping):
        data: Any = dict(path_or_text)
    else:
        text, where = _read(path_or_text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise JobSpecError(f"{where} is not valid YAML{at}: {problem}") from None
        if not isinstance(data, dict):
            hint = (" (no such file)" if isinstance(path_or_text, str) and "\n" not in path_or_text
                    and path_or_text.strip().endswith((".yaml", ".yml")) else "")
            raise JobSpecError(f"{where} must be a mapping of JobSpec fields (feature_branches, model, "
                               f"...), not {type(data).__name__}{hint}")
    normalized = _normalize(data, job_pb2.JobSpec.DESCRIPTOR, "")
    spec = job_pb2.JobSpec()
    try:
        json_format.ParseDict(normalized, spec)
    except json_format.ParseError as exc:
        raise _parse_error(str(exc)) from None
    return spec


def _read(path_or_text: str | os.PathLike) -> tuple[str, str]:
    if isinstance(path_or_text, os.PathLike):
        path = Path(path_or_text)
        try:
            return path.read_text(encoding="utf-8"), f"the job spec {path.name}"
        except OSError as exc:
            raise JobSpecError(f"cannot read the job spec {path}: {exc.strerror or exc}") from None
    if "\n" not in path_or_text and path_or_text.strip().endswith((".yaml", ".yml")) \
            and Path(path_or_text).is_file():
        return _read(Path(path_or_text))
    return path_or_text, "the job spec"


def _normalize(data: Any, message: _descriptor.Descriptor, path: str) -> dict:
    """Check keys against the message (recursively) and turn the conveniences into JSON form."""
    if not isinstance(data, dict):
        raise JobSpecError(f"must be a mapping of {message.name} fields, not {_kind(data)}", path)
    out: dict[str, Any] = {}
    oneofs: dict[str, str] = {}
    by_json = {f.json_name: f for f in message.fields}
    for key, value in data.items():
        at = f"{path}.{key}" if path else str(key)
        field = message.fields_by_name.get(key) if isinstance(key, str) else None
        field = field or (by_json.get(key) if isinstance(key, str) else None)
        if field is None:
            known = sorted(message.fields_by_name)
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            raise JobSpecError(f"unknown key {key!r} in {message.name}{hint}", at)
        oneof = field.containing_oneof
        if oneof is not None and value is not None:
            if oneof.name in oneofs:
                raise JobSpecError(f"set only one of {', '.join(f.name for f in oneof.fields)} "
                                   f"(both {oneofs[oneof.name]!r} and {field.name!r} are set)", at)
            oneofs[oneof.name] = field.name
        if value is None:
            continue
        out[field.name] = _value(value, field, at)
    return out


def _value(value: Any, field: _descriptor.FieldDescriptor, at: str) -> Any:
    if _is_repeated(field) and not _is_map(field):
        if not isinstance(value, list):
            raise JobSpecError(f"must be a list, not {_kind(value)}", at)
        return [_single(v, field, f"{at}[{i}]") for i, v in enumerate(value)]
    if _is_map(field):
        if not isinstance(value, dict):
            raise JobSpecError(f"must be a mapping, not {_kind(value)}", at)
        value_field = field.message_type.fields_by_name["value"]
        return {k: _single(v, value_field, f"{at}.{k}") for k, v in value.items()}
    return _single(value, field, at)


def _single(value: Any, field: _descriptor.FieldDescriptor, at: str) -> Any:
    if field.type == field.TYPE_ENUM:
        return _enum(value, field.enum_type, at)
    if field.type == field.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name in FREE_FORM:
            return value
        if name == "google.protobuf.Duration":
            return _duration(value, at)
        return _normalize(value, field.message_type, at)
    if field.type == field.TYPE_STRING and not isinstance(value, str):
        raise JobSpecError(f"must be text, not {_kind(value)}", at)
    if field.type == field.TYPE_BOOL and not isinstance(value, bool):
        raise JobSpecError(f"must be true or false, not {_kind(value)}", at)
    if field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_INT64, field.CPPTYPE_UINT32, field.CPPTYPE_UINT64):
        if isinstance(value, bool) or not isinstance(value, int):
            raise JobSpecError(f"must be a whole number, not {_kind(value)}", at)
    if field.cpp_type in (field.CPPTYPE_FLOAT, field.CPPTYPE_DOUBLE):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise JobSpecError(f"must be a number, not {_kind(value)}", at)
    return value


def _enum(value: Any, enum: _descriptor.EnumDescriptor, at: str) -> str:
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    names = [v.name for v in enum.values if not v.name.endswith("_UNSPECIFIED")]
    if isinstance(value, str):
        for candidate in (value, prefix + value.upper()):
            if candidate in enum.values_by_name:
                return candidate
    short = [n[len(prefix):].lower() for n in names if n.startswith(prefix)]
    raise JobSpecError(f"unknown value {value!r}; choose one of {', '.join(short)}", at)


def _duration(value: Any, at: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return f"{float(value):g}s"
    match = DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise JobSpecError(f"must be a duration like 90s, 30m or 2h (or a number of seconds), not {value!r}", at)
    return f"{float(match.group(1)) * DURATION_UNITS[match.group(2)]:g}s"


def _is_repeated(field: _descriptor.FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 6.31; label is deprecated there
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def _is_map(field: _descriptor.FieldDescriptor) -> bool:
    return (field.type == field.TYPE_MESSAGE and field.message_type.has_options
            and field.message_type.GetOptions().map_entry)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)


def _parse_error(message: str) -> JobSpecError:
    """protobuf's "Failed to parse a field: Failed to parse b field: why" as ("a.b", why)."""
    path = []
    rest = message
    while True:
        match = re.match(r"Failed to parse (\w+) field: (.*)", rest, re.S)
        if match is None:
            break
        path.append(match.group(1))
        rest = match.group(2)
    rest = re.sub(r"\s+at \"?JobSpec[^ ]*\"?\.*$", "", rest.strip()).rstrip(".")
    return JobSpecError(rest or "not a valid value", ".".join(path))


__all__ = ["load_job_spec", "JobSpecError"]
