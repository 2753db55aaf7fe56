"""Datasets, from Python: register ROOT files, split them, read them as numpy/awkward/pandas.

>>> client = beamops.Client()
>>> v = client.data.register("hzz", ["uproot-HZZ.root"], tree="events",
...                          branches=["NMuon", "Muon_Px"], cut="NMuon >= 2")
>>> train = client.data.split(v, train=0.7, validation=0.15, test=0.15, seed=42)
>>> table = client.data.read_table(train, split="train")      # a pyarrow.Table
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import pyarrow as pa

from beamops.common.v1 import lineage_pb2
from beamops.data.v1 import data_service_pb2 as pb, dataset_pb2
from beamops.data_stream import DatasetReader
from beamops.errors import UnavailableError

from .calls import call, pages, rpc_errors, stream
from .types import DatasetVersion


class DataAPI:
    def __init__(self, stub, channel) -> None:
        self._stub = stub
        self._reader = DatasetReader(channel)

    def register(self, dataset: str, urls: Sequence[str], tree: str, branches: Sequence[str] = (),
                 cut: str = "", entry_start: int = 0, entry_stop: int = 0, description: str = "",
                 tags: Sequence[str] = (), common_branches: bool = False,
                 progress: Callable[[int, int, int], None] | None = None) -> DatasetVersion:
        """Register files (paths relative to the service's data roots, globs such as
        ``"mc/*.root"``, directories such as ``"mc/"``, root:// or https:// URLs). Registering
        the same content again returns the same version.

        ``common_branches``: files whose branches differ keep only the branches all of them
        share (otherwise that is an error naming the first differing file and branch).
        ``progress(files_done, files_total, bytes_hashed)`` is called as the service hashes the
        files (about 10 times a second at most, and once at the end); with it the call streams
        (RegisterDatasetVersionStream) and has no deadline, so hundreds of files do not time out.
        """
        source = dataset_pb2.DatasetSource(
            urls=list(urls), tree_name=tree, branches=list(branches), cut=cut,
            entry_range=dataset_pb2.EntryRange(start=entry_start, stop=entry_stop),
            common_branches=common_branches,
        )
        request = pb.RegisterDatasetVersionRequest(
            dataset=dataset, source=source, description=description, tags=list(tags))
        if progress is None:
            reply = call(self._stub.RegisterDatasetVersion, request)
            return DatasetVersion.from_proto(reply.version)
        result = None
        for message in stream(self._stub.RegisterDatasetVersionStream,
                              pb.RegisterDatasetVersionStreamRequest(request=request)):
            progress(message.files_done, message.files_total, message.bytes_hashed)
            if message.HasField("result"):
                result = message.result
        if result is None:
            raise UnavailableError("the registration stream ended without a result; register again "
                                   "(the same files give the same version)")
        return DatasetVersion.from_proto(result.version)

    def get(self, dataset: str, version_id: str) -> DatasetVersion:
        reply = call(self._stub.GetDatasetVersion, pb.GetDatasetVersionRequest(dataset=dataset, version_id=version_id))
        return DatasetVersion.from_proto(reply.version)

    def list_datasets(self, name_prefix: str = "", limit: int | None = None) -> list:
        request = pb.ListDatasetsRequest(name_prefix=name_prefix, page_size=200)
        return list(pages(self._stub.ListDatasets, request, "datasets", limit))

    def list_versions(self, dataset: str, limit: int | None = None) -> list[DatasetVersion]:
        request = pb.ListDatasetVersionsRequest(dataset=dataset, page_size=200)
        return [DatasetVersion.from_proto(v) for v in pages(self._stub.ListDatasetVersions, request, "versions", limit)]

    def split(self, parent: DatasetVersion, train: float, validation: float, test: float, seed: int,
              description: str = "") -> DatasetVersion:
        """A derived version split train/validation/test; the same seed gives the same split."""
        reply = call(self._stub.DeriveDatasetVersion, pb.DeriveDatasetVersionRequest(
            parent=_ref(parent), dataset=parent.dataset, description=description,
            split=dataset_pb2.SplitDerivation(train_fraction=train, validation_fraction=validation,
                                              test_fraction=test, seed=seed)))
        return DatasetVersion.from_proto(reply.version)

    def select(self, parent: DatasetVersion, cut: str, branches: Sequence[str] = ()) -> DatasetVersion:
        reply = call(self._stub.DeriveDatasetVersion, pb.DeriveDatasetVersionRequest(
            parent=_ref(parent), dataset=parent.dataset,
            selection=dataset_pb2.SelectionDerivation(cut=cut, branches=list(branches))))
        return DatasetVersion.from_proto(reply.version)

    def read_table(self, version: DatasetVersion, split: str = "", branches: Sequence[str] = (),
                   **options) -> pa.Table:
        """The whole version (or one split) as a pyarrow Table; see DatasetReader for options."""
        with rpc_errors():
            return self._reader.read_table(version.dataset, version.version_id, split=split,
                                           branches=branches, **options)

    def iter_batches(self, version: DatasetVersion, split: str = "", branches: Sequence[str] = (),
                     batch_size: int = 0, **options) -> Iterator[pa.RecordBatch]:
        """Record batches as they stream in, memory bounded."""
        with rpc_errors():
            yield from self._reader.iter_batches(version.dataset, version.version_id, split=split,
                                                 branches=branches, batch_size=batch_size, **options)


def _ref(version: DatasetVersion) -> lineage_pb2.DatasetVersionRef:
    return lineage_pb2.DatasetVersionRef(dataset=version.dataset, version_id=version.version_id,
                                         content_hash=version.content_hash)

