"""Read a dataset version from the data service as Arrow, numpy, awkward or pandas.

    from beamops.data_stream import DatasetReader
    reader = DatasetReader(channel, metadata=(("authorization", "Bearer ..."),))
    table = reader.read_table("hzz", "dsv-...", branches=["NMuon", "Muon_Px"], split="train")
    for batch in reader.iter_batches("hzz", "dsv-...", batch_size=50_000):
        ...  # a pyarrow.RecordBatch per message

Works with a ``grpc.Channel`` (blocking) or a ``grpc.aio.Channel`` (use the ``a*`` methods).
Only pyarrow is needed; numpy / awkward / pandas are imported when you ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import data_service_pb2_grpc


@dataclass
class StreamInfo:
    """What the first message of a stream says."""

    schema: pa.Schema
    version: lineage_pb2.DatasetVersionRef
    total_rows: int


def build_request(dataset: str, version_id: str, *, split: str = "", branches: Sequence[str] = (),
                  cut: str = "", entry_start: int = 0, entry_stop: int = 0, batch_size: int = 0,
                  pad_length: int | None = None, branch_pad_lengths: Mapping[str, int] | None = None,
                  pad_value: float = 0.0, include_entry_index: bool = False) -> pb.ReadDatasetVersionRequest:
    pad = pad_length is not None or bool(branch_pad_lengths)
    return pb.ReadDatasetVersionRequest(
        version=lineage_pb2.DatasetVersionRef(dataset=dataset, version_id=version_id, split=split),
        branches=list(branches), cut=cut,
        entry_range={"start": entry_start, "stop": entry_stop}, batch_size=batch_size,
        jagged_mode=pb.JAGGED_MODE_PAD if pad else pb.JAGGED_MODE_LISTS,
        pad_length=pad_length or 0, branch_pad_lengths=dict(branch_pad_lengths or {}),
        pad_value=pad_value, include_entry_index=include_entry_index)


class _Decoder:
    """Turns the stream's messages back into Arrow objects."""

    def __init__(self) -> None:
        self.info: StreamInfo | None = None

    def feed(self, response: pb.ReadDatasetVersionResponse) -> pa.RecordBatch | None:
        if self.info is None:
            schema = pa.ipc.read_schema(pa.py_buffer(response.arrow_ipc))
            self.info = StreamInfo(schema, response.version, response.total_rows)
            return None
        message = pa.ipc.read_message(pa.py_buffer(response.arrow_ipc))
        return pa.ipc.read_record_batch(message, self.info.schema)


def batches_from(responses: Iterable[pb.ReadDatasetVersionResponse]) -> Iterator[pa.RecordBatch]:
    decoder = _Decoder()
    for response in responses:
        batch = decoder.feed(response)
        if batch is not None:
            yield batch


def table_from(responses: Iterable[pb.ReadDatasetVersionResponse]) -> pa.Table:
    decoder = _Decoder()
    batches = [b for r in responses if (b := decoder.feed(r)) is not None]
    assert decoder.info is not None, "the stream ended before its schema"
    return pa.Table.from_batches(batches, schema=decoder.info.schema)


def to_numpy(table: pa.Table) -> dict[str, Any]:
    """Column -> numpy array (flat or padded columns; jagged columns become awkward arrays)."""
    import awkward as ak
    import numpy as np

    out: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks() if table.num_rows else table.column(name)
        t = column.type
        if pa.types.is_fixed_size_list(t):
            size = t.list_size
            values = column.flatten().to_numpy(zero_copy_only=False)
            out[name] = values.reshape(len(column), size)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            out[name] = ak.from_arrow(column, highlevel=True)
        else:
            out[name] = np.asarray(column.to_numpy(zero_copy_only=False))
    return out


def to_awkward(table: pa.Table) -> Any:
    import awkward as ak

    return ak.from_arrow(table)


def to_pandas(table: pa.Table) -> Any:
    return table.to_pandas()


class DatasetReader:
    """Client of ReadDatasetVersion. ``metadata`` carries the token."""

    def __init__(self, channel: Any, metadata: Sequence[tuple[str, str]] = (),
                 timeout: float | None = None) -> None:
        self._stub = data_service_pb2_grpc.DataServiceStub(channel)
        self._metadata = tuple(metadata)
        self._timeout = timeout

    def _call(self, dataset: str, version_id: str, **options: Any):
        return self._stub.ReadDatasetVersion(build_request(dataset, version_id, **options),
                                             metadata=self._metadata, timeout=self._timeout)

    # blocking channel
    def iter_batches(self, dataset: str, version_id: str, **options: Any) -> Iterator[pa.RecordBatch]:
        return batches_from(self._call(dataset, version_id, **options))

    def read_table(self, dataset: str, version_id: str, **options: Any) -> pa.Table:
        return table_from(self._call(dataset, version_id, **options))

    def read_numpy(self, dataset: str, version_id: str, **options: Any) -> dict[str, Any]:
        return to_numpy(self.read_table(dataset, version_id, **options))

    def read_awkward(self, dataset: str, version_id: str, **options: Any) -> Any:
        return to_awkward(self.read_table(dataset, version_id, **options))

    def read_pandas(self, dataset: str, version_id: str, **options: Any) -> Any:
        return to_pandas(self.read_table(dataset, version_id, **options))

    # grpc.aio channel
    async def aiter_batches(self, dataset: str, version_id: str, **options: Any) -> AsyncIterator[pa.RecordBatch]:
        decoder = _Decoder()
        async for response in self._call(dataset, version_id, **options):
            batch = decoder.feed(response)
            if batch is not None:
                yield batch

    async def aread_table(self, dataset: str, version_id: str, **options: Any) -> pa.Table:
        decoder = _Decoder()
        batches = []
        async for response in self._call(dataset, version_id, **options):
            batch = decoder.feed(response)
            if batch is not None:
                batches.append(batch)
        assert decoder.info is not None, "the stream ended before its schema"
        return pa.Table.from_batches(batches, schema=decoder.info.schema)
