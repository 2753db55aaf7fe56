"""Batch messages written in wire form parse as the same ReadDatasetVersionResponse."""

import numpy as np
import pyarrow as pa

from beamops.data.stream_wire import batch_response, serialize
from beamops.data.v1 import data_service_pb2 as pb


def test_batch_response_parses_as_the_message_the_generated_class_would_write():
    batch = pa.record_batch({"x": pa.array(np.arange(50_000, dtype=np.float32))})  # > 2**16: multi-byte length
    ipc = batch.serialize()
    wire = batch_response(ipc, num_rows=50_000, row_offset=123_456_789_012, truncated_rows=3)
    parsed = pb.ReadDatasetVersionResponse.FromString(wire)
    assert parsed == pb.ReadDatasetVersionResponse(arrow_ipc=ipc.to_pybytes(), num_rows=50_000,
                                                   row_offset=123_456_789_012, truncated_rows=3)
    message = pa.ipc.read_message(pa.py_buffer(parsed.arrow_ipc))
    assert pa.ipc.read_record_batch(message, batch.schema).equals(batch)


def test_zero_fields_and_serialize_passes_bytes_through():
    ipc = pa.py_buffer(b"")
    assert pb.ReadDatasetVersionResponse.FromString(batch_response(ipc, 0, 0)) == pb.ReadDatasetVersionResponse()
    wire = batch_response(pa.py_buffer(b"abc"), 1, 0)
    assert serialize(wire) is wire
    message = pb.ReadDatasetVersionResponse(num_rows=5)
    assert serialize(message) == message.SerializeToString()
