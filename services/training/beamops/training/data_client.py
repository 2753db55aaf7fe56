"""Adapter to the data service: only its gRPC stubs, turned into the training service's own types.

- :class:`DataClient` (asyncio, in the service): describes dataset versions at submit time.
- :func:`read_split` (blocking, in the worker): streams one split of a version as Arrow IPC
  through ``ReadDatasetVersion`` and returns numpy columns with the version's content hash.

Credentials: the caller's bearer token is forwarded, so the data service's access rules apply
to the user who submitted the job (see the README for the choice).
"""

from __future__ import annotations

from typing import Mapping

import grpc
import numpy as np

from beamops.common.v1 import lineage_pb2, tensor_pb2
from beamops.data.v1 import data_service_pb2, data_service_pb2_grpc, dataset_pb2
from beamops.runtime.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable

from .spec import BranchInfo, DatasetInfo, DatasetRef

DTYPES = {
    tensor_pb2.DATA_TYPE_BOOL: "bool", tensor_pb2.DATA_TYPE_INT8: "int8",
    tensor_pb2.DATA_TYPE_INT16: "int16", tensor_pb2.DATA_TYPE_INT32: "int32",
    tensor_pb2.DATA_TYPE_INT64: "int64", tensor_pb2.DATA_TYPE_UINT8: "uint8",
    tensor_pb2.DATA_TYPE_UINT16: "uint16", tensor_pb2.DATA_TYPE_UINT32: "uint32",
    tensor_pb2.DATA_TYPE_UINT64: "uint64", tensor_pb2.DATA_TYPE_FLOAT16: "float16",
    tensor_pb2.DATA_TYPE_FLOAT32: "float32", tensor_pb2.DATA_TYPE_FLOAT64: "float64",
}
LAYOUTS = {
    dataset_pb2.BRANCH_LAYOUT_FLAT: "flat",
    dataset_pb2.BRANCH_LAYOUT_JAGGED: "jagged",
    dataset_pb2.BRANCH_LAYOUT_FIXED_ARRAY: "fixed",
}


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]


class DataClient:
    """Describes dataset versions (asyncio)."""

    def __init__(self, address: str, max_message_bytes: int = 64 * 1024 * 1024,
                 timeout_s: float = 30.0) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(address, options=channel_options(max_message_bytes))
        self._stub = data_service_pb2_grpc.DataServiceStub(self._channel)
        self._timeout = timeout_s

    async def close(self) -> None:
        await self._channel.close()

    async def describe(self, ref: DatasetRef, token: str | None, field: str) -> DatasetInfo:
        """The version's branches, splits and content hash; INVALID_ARGUMENT naming ``field`` when
        the dataset or version does not exist."""
        try:
            response = await self._stub.GetDatasetVersion(
                data_service_pb2.GetDatasetVersionRequest(dataset=ref.dataset, version_id=ref.version_id),
                metadata=auth_metadata(token), timeout=self._timeout)
            version = response.version
            schema = version.schema
            if not schema.branches:
                schema = (await self._stub.GetSchema(
                    data_service_pb2.GetSchemaRequest(dataset=ref.dataset, version_id=ref.version_id),
                    metadata=auth_metadata(token), timeout=self._timeout)).schema
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, ref, field) from None
        return DatasetInfo(
            dataset=ref.dataset, version_id=ref.version_id, content_hash=version.content_hash,
            branches={b.name: BranchInfo(b.name, DTYPES.get(b.dtype, ""), LAYOUTS.get(b.layout, "flat"))
                      for b in schema.branches},
            splits={s.name: int(s.entry_count) for s in version.splits},
        )


def _error(exc: grpc.RpcError, ref: DatasetRef, field: str) -> Exception:
    code, details = exc.code(), exc.details() or ""
    what = f"dataset {ref.dataset} version {ref.version_id}"
    if code == grpc.StatusCode.NOT_FOUND:
        return InvalidArgument(f"{what} does not exist in the data service", field=f"{field}.version_id")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"the data service refused {what}: {details}", field=field)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(f"the data service does not let you read {what}: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(f"the data service did not accept the credentials: {details}")
    return Unavailable(f"the data service could not be asked about {what} ({code.name}); try again")


class DataReadError(Exception):
    """Reading a split failed; the message is for the job's failure message."""


def exact_pattern(name: str) -> str:
    """The data service reads ``branches`` as patterns (a glob when it holds ``*?[``, a regular
    expression between slashes): ``name`` written so that it matches that one branch only
    ("Jet[0]" as "Jet[[]0]", "/x/" as "[/]x/")."""
    if not any(c in name for c in "*?[") and not (len(name) > 2 and name[0] == name[-1] == "/"):
        return name
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in name)
    return "[/]" + escaped[1:] if escaped.startswith("/") else escaped


def read_split(address: str, token: str | None, ref: DatasetRef, split: str, branches: list[str],
               pad_length: int = 0, max_message_bytes: int = 256 * 1024 * 1024,
               timeout_s: float = 3600.0, branch_pad_lengths: Mapping[str, int] | None = None,
               ) -> tuple[dict[str, np.ndarray], str]:
    """Stream ``split`` of ``ref`` (blocking): numpy columns (padded jagged branches as 2-D arrays
    with a ``<branch>_mask`` column) and the content hash the data service reported.
    ``branch_pad_lengths`` pads the branches named to their own lengths (others: ``pad_length``)."""
    import pyarrow as pa

    request = data_service_pb2.ReadDatasetVersionRequest(
        version=lineage_pb2.DatasetVersionRef(dataset=ref.dataset, version_id=ref.version_id, split=split),
        branches=[exact_pattern(b) for b in dict.fromkeys(branches)],
    )
    if pad_length or branch_pad_lengths:
        request.jagged_mode = data_service_pb2.JAGGED_MODE_PAD
        request.pad_length = pad_length
        request.branch_pad_lengths.update(dict(branch_pad_lengths or {}))
    content_hash = ""
    buffer = bytearray()
    with grpc.insecure_channel(address, options=channel_options(max_message_bytes)) as channel:
        stub = data_service_pb2_grpc.DataServiceStub(channel)
        try:
            for i, message in enumerate(stub.ReadDatasetVersion(
                    request, metadata=auth_metadata(token), timeout=timeout_s)):
                if i == 0:
                    content_hash = message.version.content_hash
                buffer += message.arrow_ipc
        except grpc.RpcError as exc:
            raise DataReadError(
                f"reading split {split!r} of dataset {ref.dataset} version {ref.version_id} from the "
                f"data service failed ({exc.code().name}): {exc.details()}") from None
    if not buffer:
        raise DataReadError(f"the data service sent nothing for split {split!r} of dataset "
                            f"{ref.dataset} version {ref.version_id}")
    table = pa.ipc.open_stream(pa.py_buffer(bytes(buffer))).read_all()
    columns: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            width = col.type.list_size
            values = col.flatten().to_numpy(zero_copy_only=False)
            columns[name] = values.reshape(len(col), width)
        else:
            columns[name] = col.to_numpy(zero_copy_only=False)
    return columns, content_hash
