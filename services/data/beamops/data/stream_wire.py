"""ReadDatasetVersionResponse messages that carry a record batch, written straight in protobuf
wire form: the Arrow IPC bytes are copied once, from pyarrow's buffer into the message bytes.

Going through the generated class would copy them three more times (Buffer.to_pybytes, the
bytes field assignment, SerializeToString). The wire form of a message is its fields in any
order, so a batch message is ``tag(arrow_ipc) + length + IPC bytes`` followed by the small
fields serialized by the generated class; any protobuf parser reads it as the same message.
The servicer yields these bytes, and :func:`serialize` (the RPC's response serializer, see
server.py) passes them through as they are; other responses are serialized as usual.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from beamops.data.v1 import data_service_pb2 as pb

_ARROW_IPC_TAG = bytes([(pb.ReadDatasetVersionResponse.ARROW_IPC_FIELD_NUMBER << 3) | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def batch_response(ipc: pa.Buffer, num_rows: int, row_offset: int, truncated_rows: int = 0) -> bytes:
    """The wire bytes of ReadDatasetVersionResponse(arrow_ipc=ipc, num_rows, row_offset, truncated_rows)."""
    rest = pb.ReadDatasetVersionResponse(num_rows=num_rows, row_offset=row_offset,
                                         truncated_rows=truncated_rows).SerializeToString()
    return b"".join((_ARROW_IPC_TAG, _varint(ipc.size), memoryview(ipc), rest))


def serialize(response: Any) -> bytes:
    """Response serializer of ReadDatasetVersion: pre-encoded bytes as they are, messages serialized."""
    if isinstance(response, bytes):
        return response
    return response.SerializeToString()
