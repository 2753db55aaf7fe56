"""Training jobs, from Python: submit a spec, follow it, cancel it, reproduce it.

>>> job = client.training.submit("examples/jobs/zmumu_gbt.yaml")
>>> job = client.training.follow(job.job_id)       # a progress bar in a terminal
>>> job.state, job.model, job.version
('SUCCEEDED', 'zmumu-mass', '1.0')
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Iterator

from beamops.training.v1 import job_pb2, training_service_pb2 as pb

from .calls import call, pages, stream
from .types import Job, JobEvent


class TrainingAPI:
    def __init__(self, stub) -> None:
        self._stub = stub

    def submit(self, spec: job_pb2.JobSpec | dict | str | Path, idempotency_key: str = "",
               validate_only: bool = False) -> Job:
        """Submit a job; returns at once. ``spec`` is a JobSpec, a dict, YAML text or a YAML file."""
        if not isinstance(spec, job_pb2.JobSpec):
            from beamops.job_spec import load_job_spec

            spec = load_job_spec(spec)
        reply = call(self._stub.SubmitJob, pb.SubmitJobRequest(
            spec=spec, idempotency_key=idempotency_key, validate_only=validate_only))
        return Job.from_proto(reply.job)

    def get(self, job_id: str) -> Job:
        return Job.from_proto(call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id)).job)

    def list(self, states: Iterable[str] = (), submitted_by: str = "", limit: int | None = 100) -> list[Job]:
        request = pb.ListJobsRequest(
            states=[job_pb2.JobState.Value(f"JOB_STATE_{s.upper()}") for s in states],
            submitted_by=submitted_by, page_size=200)
        return [Job.from_proto(j) for j in pages(self._stub.ListJobs, request, "jobs", limit)]

    def cancel(self, job_id: str, reason: str = "") -> Job:
        return Job.from_proto(call(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id, reason=reason)).job)

    def reproduce(self, job_id: str) -> Job:
        """Re-run a finished job from its lineage; the new job's result says what agreed."""
        return Job.from_proto(call(self._stub.ReproduceJob, pb.ReproduceJobRequest(job_id=job_id)).job)

    def watch(self, job_id: str, after_sequence: int = 0, logs: bool = True) -> Iterator[JobEvent]:
        """Events as they happen (state changes, progress, metrics, log lines) until the job ends."""
        request = pb.WatchJobRequest(job_id=job_id, after_sequence=after_sequence, exclude_log_lines=not logs)
        for reply in stream(self._stub.WatchJob, request):
            yield JobEvent.from_proto(reply.event)

    def follow(self, job_id: str, progress: bool | None = None) -> Job:
        """Wait for a job to end, with a progress bar when ``progress`` (default: in a terminal)."""
        if progress is None:
            progress = sys.stderr.isatty()
        if not progress:
            for _ in self.watch(job_id, logs=False):
                pass
            return self.get(job_id)
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), transient=False) as bar:
            task = bar.add_task(f"job {job_id}", total=1.0)
            for event in self.watch(job_id):
                if event.kind == "progress":
                    bar.update(task, completed=event.fraction)
                elif event.kind == "state":
                    bar.update(task, description=f"job {job_id}: {event.state.lower()}")
                elif event.kind == "metric":
                    bar.console.print(f"  {event.metric} = {event.value:.5g}")
        return self.get(job_id)
