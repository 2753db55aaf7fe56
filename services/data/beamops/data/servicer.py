"""gRPC glue of the data service: convert, delegate to the catalog (in a thread, since it reads
files), convert back. ReadDatasetVersion reads and encodes one batch at a time in a worker
thread, one batch ahead of the one being sent, so the event loop never blocks and memory stays
bounded. RegisterDatasetVersionStream runs the same registration in a thread and forwards its
progress (reported from the hashing threads) through an asyncio queue, at most one message per
PROGRESS_INTERVAL_S plus the final one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from typing import AsyncIterator, Callable, Iterator

from beamops.data.v1 import data_service_pb2 as pb
from beamops.data.v1 import data_service_pb2_grpc
from beamops.runtime.auth import current_principal
from beamops.runtime.errors import InvalidArgument

from . import convert
from .arrow_codec import PadOptions, arrow_schema, batch_messages, schema_message, to_record_batch
from .catalog import DataCatalog, expected_total
from .reading import ReadPlan, read_batches
from .stream_wire import batch_response

MAX_PAD = 100_000
PROGRESS_INTERVAL_S = 0.1  # RegisterDatasetVersionStream: at most ~10 progress messages a second


class _StreamGone(Exception):
    """Raised in a hashing thread when the client has cancelled its registration stream, so
    that the registration stops before anything is stored."""


class DataServicer(data_service_pb2_grpc.DataServiceServicer):
    def __init__(self, catalog: DataCatalog, max_message_bytes: int, max_batch_size: int) -> None:
        self._catalog = catalog
        self._max_bytes = max(int(max_message_bytes * 0.8), 1024 * 1024)
        self._max_batch = max_batch_size

    def _register(self, request, progress=None) -> Callable[[], tuple]:
        """The catalog call of RegisterDatasetVersion(Stream), ready to run in a thread."""
        return functools.partial(
            self._catalog.register, request.dataset, convert.source_from(request.source),
            request.description, list(request.tags), current_principal().name,
            request.validate_only, progress=progress)

    async def RegisterDatasetVersion(self, request, context):
        version, created = await asyncio.to_thread(self._register(request))
        return pb.RegisterDatasetVersionResponse(version=convert.version_to(version), created=created)

    async def RegisterDatasetVersionStream(
            self, request, context) -> AsyncIterator[pb.RegisterDatasetVersionStreamResponse]:
        """RegisterDatasetVersion, streaming (files done, files in all, bytes hashed) as the
        files are described. Errors propagate as in the unary RPC (the error interceptor maps
        them). When the client goes away, the next progress report raises in the worker, so the
        registration fails before storing: a version is stored whole (one transaction) or not."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
        gone = threading.Event()

        def progress(done: int, total: int, hashed: int) -> None:  # in hashing threads
            if gone.is_set():
                raise _StreamGone()
            loop.call_soon_threadsafe(queue.put_nowait, (done, total, hashed))

        work = asyncio.ensure_future(asyncio.to_thread(self._register(request.request, progress)))
        latest = sent = (0, 0, 0)
        sent_at = float("-inf")
        getter: asyncio.Future | None = None
        try:
            while not work.done():
                getter = getter or asyncio.ensure_future(queue.get())
                wait = None if latest == sent else max(0.0, sent_at + PROGRESS_INTERVAL_S - loop.time())
                done, _ = await asyncio.wait({work, getter}, timeout=wait,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    latest, getter = max(latest, getter.result()), None
                    while not queue.empty():  # several files finished since: keep the newest
                        latest = max(latest, queue.get_nowait())
                if (not work.done() and latest != sent
                        and loop.time() >= sent_at + PROGRESS_INTERVAL_S):
                    yield _progress_message(latest)
                    sent, sent_at = latest, loop.time()
            version, created = work.result()  # a failure raises here, mapped like the unary RPC
            while not queue.empty():
                latest = max(latest, queue.get_nowait())
            files = len(version.files)
            final = max(latest, (files, files, sum(f.size_bytes for f in version.files)))
            yield _progress_message(final, pb.RegisterDatasetVersionResponse(
                version=convert.version_to(version), created=created))
        finally:
            gone.set()
            if getter is not None:
                getter.cancel()
            if not work.done():  # the client went away: the worker stops at its next report
                work.add_done_callback(_retrieve)

    async def GetDataset(self, request, context):
        dataset = await asyncio.to_thread(self._catalog.get_dataset, request.dataset)
        return pb.GetDatasetResponse(dataset=convert.dataset_to(dataset))

    async def ListDatasets(self, request, context):
        items, token = await asyncio.to_thread(
            self._catalog.list_datasets, request.page_size, request.page_token,
            request.name_prefix, list(request.tags), request.created_by)
        return pb.ListDatasetsResponse(datasets=[convert.dataset_to(d) for d in items],
                                       next_page_token=token)

    async def GetDatasetVersion(self, request, context):
        version = await asyncio.to_thread(self._catalog.get_version, request.dataset, request.version_id)
        return pb.GetDatasetVersionResponse(version=convert.version_to(version))

    async def ListDatasetVersions(self, request, context):
        items, token = await asyncio.to_thread(
            self._catalog.list_versions, request.dataset, request.page_size, request.page_token,
            list(request.tags), request.only_registered_from_files)
        return pb.ListDatasetVersionsResponse(versions=[convert.version_to(v) for v in items],
                                              next_page_token=token)

    async def DeriveDatasetVersion(self, request, context):
        derivation = convert.derivation_from(request)
        if derivation is None:
            raise InvalidArgument("say what to derive: selection, split or parquet", field="derivation")
        version, created = await asyncio.to_thread(
            self._catalog.derive, convert.ref_from(request.parent), request.dataset, derivation,
            request.description, list(request.tags), current_principal().name)
        return pb.DeriveDatasetVersionResponse(version=convert.version_to(version), created=created)

    async def GetLineage(self, request, context):
        nodes, files = await asyncio.to_thread(self._catalog.lineage, request.dataset, request.version_id)
        return pb.GetLineageResponse(nodes=[convert.lineage_node_to(n) for n in nodes],
                                     original_files=[convert.file_to(f) for f in files])

    async def GetSchema(self, request, context):
        version = await asyncio.to_thread(self._catalog.get_version, request.dataset, request.version_id)
        return pb.GetSchemaResponse(schema=convert.schema_to(version))

    async def ComputeStatistics(self, request, context):
        stats = await asyncio.to_thread(
            self._catalog.compute_statistics, convert.ref_from(request.version),
            list(request.branches), request.histogram_bins, request.recompute,
            current_principal().name, self._max_batch)
        return pb.ComputeStatisticsResponse(statistics=convert.statistics_to(stats))

    async def GetStatistics(self, request, context):
        stats = await asyncio.to_thread(self._catalog.get_statistics, convert.ref_from(request.version),
                                        list(request.branches))
        return pb.GetStatisticsResponse(statistics=convert.statistics_to(stats))

    async def ReadDatasetVersion(self, request, context) -> AsyncIterator[pb.ReadDatasetVersionResponse]:
        pad = _pad_options(request)
        plan: ReadPlan = await asyncio.to_thread(
            self._catalog.plan_read, convert.ref_from(request.version), list(request.branches),
            request.cut, convert.entry_range_from(request.entry_range), request.batch_size,
            self._max_batch)
        infos = [plan.version.branch(name) for name in plan.branches]
        if pad is not None:
            missing = [b.name for b in infos if b.layout == "jagged" and pad.length_of(b.name) <= 0]
            if missing:
                raise InvalidArgument(f"JAGGED_MODE_PAD needs a pad length for {missing[0]!r}: set "
                                      "pad_length or branch_pad_lengths", field="pad_length")
        schema = arrow_schema(infos, pad, request.include_entry_index)
        yield pb.ReadDatasetVersionResponse(
            arrow_ipc=schema_message(schema), version=convert.ref_to(plan.version.ref.model_copy(
                update={"split": plan.split})),
            num_rows=0, row_offset=0, total_rows=expected_total(plan))

        batches = read_batches(plan)
        messages = _batch_messages(batches, infos, schema, pad, request.include_entry_index,
                                   self._max_bytes)
        # Each message is made in a worker thread while the one before it is sent.
        pending = asyncio.ensure_future(asyncio.to_thread(next, messages, None))
        try:
            while True:
                message = await pending
                if message is None:
                    break
                pending = asyncio.ensure_future(asyncio.to_thread(next, messages, None))
                yield message  # wire bytes of a ReadDatasetVersionResponse (stream_wire)
        finally:
            if not pending.done():
                pending.add_done_callback(lambda _f: (_close(messages), _close(batches)))
            else:
                with contextlib.suppress(BaseException):
                    pending.exception()
                _close(messages)
                _close(batches)


def _batch_messages(batches: Iterator, infos: list, schema, pad, with_entries: bool,
                    max_bytes: int) -> Iterator[bytes]:
    """Read, convert and encode batch after batch, one message at a time: memory holds one
    batch and the message being made, not every message of a batch."""
    row_offset = 0
    for batch in batches:
        record, truncated = to_record_batch(batch.arrays, infos, schema, pad,
                                            batch.entries if with_entries else None)
        del batch
        for i, (ipc, _, rows) in enumerate(batch_messages(record, max_bytes)):
            yield batch_response(ipc, rows, row_offset, truncated if i == 0 else 0)
            row_offset += rows


def _progress_message(counts: tuple[int, int, int], result=None) -> pb.RegisterDatasetVersionStreamResponse:
    done, total, hashed = counts
    return pb.RegisterDatasetVersionStreamResponse(files_done=done, files_total=total,
                                                   bytes_hashed=hashed, result=result)


def _retrieve(future: asyncio.Future) -> None:
    """Fetch an abandoned worker's outcome, so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _close(iterator: Iterator) -> None:
    with contextlib.suppress(Exception):
        iterator.close()  # type: ignore[attr-defined]


def _pad_options(request) -> PadOptions | None:
    if request.jagged_mode != pb.JAGGED_MODE_PAD:
        if request.pad_length or request.branch_pad_lengths:
            raise InvalidArgument("pad_length is only used with JAGGED_MODE_PAD", field="pad_length")
        return None
    lengths = dict(request.branch_pad_lengths)
    for value in (request.pad_length, *lengths.values()):
        if value < 0 or value > MAX_PAD:
            raise InvalidArgument(f"pad lengths must be in [1, {MAX_PAD}]", field="pad_length")
    return PadOptions(default_length=request.pad_length, lengths=lengths, value=request.pad_value)
