"""The job manager: submit, run, watch, cancel, reproduce, and recover after a restart.

No gRPC here. The data service, the registry and the executors come in through the
constructor. A job's life: QUEUED (stored, waiting for a slot) -> RUNNING (the executor runs the
worker; its events are stored with sequence numbers) -> SUCCEEDED (the model is registered),
FAILED, CANCELLED or REJECTED (the model missed a quality gate of the spec; nothing registered).
Every change is stored before anyone is told, so a restart loses nothing; jobs a restart
interrupted are marked FAILED with the reason.

Limits (:mod:`.limits`): a submit beyond the caps on unfinished jobs (the caller's and everyone's)
is RESOURCE_EXHAUSTED, nothing stored; a running job is stopped and FAILED after its timeout (the
spec's, else the service's default), with a message naming the limit.

Credentials: the caller's token is kept in memory only, for the job's own calls to the data
service (reading) and the registry (registering): the submitter's access rights apply. It never
leaves this process for a Dask cluster: a Dask task reads with the workers' own reader
credential, so the submitter's right to read each dataset version is checked again, with their
token, when the job starts (and registration still uses their token).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping, Protocol

import numpy as np

from beamops.runtime.errors import (AlreadyExists, BeamopsError, FailedPrecondition, InvalidArgument,
                                    PermissionDenied, ResourceExhausted)

from .executor import Executor, LocalExecutor, WorkOutcome
from .failures import RegistrationError
from .limits import resolve_timeout, timeout_message
from .reproduce import compare_runs
from .search import best_trial, expand_trials
from .search_run import SearchRun, TrialRun
from .spec import (DatasetInfo, DatasetRef, PublishTarget, TrainingSpec, check_against_data, input_count,
                   parse_quality_gate, validate_spec)
from .store import (CANCELLED, FAILED, FINAL_STATES, QUEUED, REJECTED, RUNNING, SUCCEEDED, EventRecord,
                    JobFilter, JobRecord, JobStore, now)

log = logging.getLogger(__name__)

RESTART_MESSAGE = "the training service restarted while the job was running"
RESTART_QUEUED_MESSAGE = "the training service restarted before the job started; submit it again"
STOP_MESSAGE = "the training service stopped while the job was running; submit it again"
IDEMPOTENCY_WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Caller:
    name: str
    is_admin: bool = False
    token: str | None = None  # forwarded to the data service and the registry


class DataService(Protocol):
    async def describe(self, ref: DatasetRef, token: str | None, field: str) -> DatasetInfo: ...


class Registry(Protocol):
    async def check_target(self, publish: PublishTarget, inputs: int, token: str | None) -> None: ...

    async def register(self, job_id: str, spec: TrainingSpec, result: dict, onnx: bytes,
                       token: str | None): ...


def new_job_id() -> str:
    return f"job-{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


class JobManager:
    def __init__(self, store: JobStore, data: DataService, registry: Registry,
                 executors: Mapping[str, Executor], *, default_executor: str, data_address: str,
                 jobs_dir: Path, max_concurrent_jobs: int = 2, max_message_bytes: int = 64 * 1024 * 1024,
                 service_token: str | None = None, max_trials: int = 256,
                 entry_point_exists: Callable[[str], bool] | None = None,
                 entry_point_modules: tuple[str, ...] | None = None,
                 stop_stale_worker: Callable[[dict, str], bool] = LocalExecutor.stop_stale,
                 job_timeout_s: float = 6 * 3600.0, max_job_timeout_s: float = 48 * 3600.0,
                 max_queued_jobs_per_user: int = 20, max_queued_jobs: int = 200) -> None:
        self.store = store
        self.data = data
        self.registry = registry
        self.executors = dict(executors)
        self.default_executor = default_executor
        self.data_address = data_address
        self.jobs_dir = jobs_dir
        self.max_message_bytes = max_message_bytes
        self.service_token = service_token
        self.entry_point_exists = entry_point_exists
        self.entry_point_modules = entry_point_modules
        self.max_trials = max_trials
        self.stop_stale_worker = stop_stale_worker
        self.job_timeout_s = job_timeout_s  # a job's wall-clock limit when its spec sets none
        self.max_job_timeout_s = max_job_timeout_s
        self.max_queued_jobs_per_user = max_queued_jobs_per_user
        self.max_queued_jobs = max_queued_jobs
        self._slots = asyncio.Semaphore(max_concurrent_jobs)
        self._tasks: dict[str, asyncio.Task] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._cancel_asked: set[str] = set()
        self._tolerances: dict[str, float] = {}
        self._searches: dict[str, SearchRun] = {}
        self._closing = False

    # ------------------------------------------------------------------ start / stop

    def recover(self) -> list[str]:
        """Mark jobs an earlier run of the service left QUEUED or RUNNING as FAILED (stopping any
        worker still running: its results could not be registered with the caller's rights)."""
        failed = []
        for job in self.store.unfinished():
            if job.worker:
                self.stop_stale_worker(job.worker, job.job_id)
            message = RESTART_MESSAGE if job.state == RUNNING else RESTART_QUEUED_MESSAGE
            self.store.update(job.job_id, [("state_change", {"previous": job.state, "state": FAILED,
                                                             "message": message})],
                              state=FAILED, end_time=now(), failure_message=message)
            failed.append(job.job_id)
        if failed:
            log.warning("marked %d interrupted job(s) FAILED after a restart", len(failed))
        return failed

    async def close(self) -> None:
        """Stop: running workers are stopped and their jobs marked FAILED (the service stopped)."""
        self._closing = True
        tasks = list(self._tasks.values())
        for job_id in list(self._tasks):
            await self._cancel_work(job_id)
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for executor in self.executors.values():
            await executor.close()

    # ------------------------------------------------------------------ submit

    async def submit(self, caller: Caller, spec: TrainingSpec, splits_named=(False, False, False),
                     idempotency_key: str = "", validate_only: bool = False, reproduces: str = "",
                     tolerance: float = 0.0) -> JobRecord:
        if len(idempotency_key) > 200 or (idempotency_key and not idempotency_key.isprintable()):
            raise InvalidArgument("idempotency_key must be at most 200 printable characters",
                                  field="idempotency_key")
        request_hash = hashlib.sha256((spec.to_json() + reproduces).encode()).hexdigest()
        if idempotency_key:
            since = now() - timedelta(seconds=IDEMPOTENCY_WINDOW_S)
            existing = self.store.find_by_key(caller.name, idempotency_key, since)
            if existing is not None:
                if existing.request_hash != request_hash:
                    raise AlreadyExists(f"idempotency_key {idempotency_key!r} was used for a different "
                                        f"request (job {existing.job_id}); use a new key",
                                        job=existing.job_id)
                return existing
        spec = validate_spec(spec, entry_point_exists=self.entry_point_exists, max_trials=self.max_trials,
                             entry_point_modules=self.entry_point_modules, max_timeout_s=self.max_job_timeout_s)
        executor = spec.executor or self.default_executor
        if executor not in self.executors:
            raise FailedPrecondition("no Dask scheduler is configured for this training service; "
                                     "choose the local executor", field="spec.executor")
        token = self._token(caller)
        infos = await self._describe(spec, token)
        spec = check_against_data(spec, infos, splits_named)
        if spec.publish is not None:
            await self.registry.check_target(spec.publish, input_count(spec, infos), token)
        job = JobRecord(job_id=new_job_id() if not validate_only else "", spec=spec, state=QUEUED,
                        executor=executor, submitted_by=caller.name, submit_time=now(),
                        reproduces=reproduces, idempotency_key=idempotency_key, request_hash=request_hash)
        self._check_queue_caps(caller)  # no await from here to create: no submit slips past the caps
        if validate_only:
            return job
        job = self.store.create(job, ("state_change", {"previous": "", "state": QUEUED,
                                                       "message": f"submitted by {caller.name}"}))
        if reproduces:
            self._tolerances[job.job_id] = tolerance
        self._tasks[job.job_id] = asyncio.create_task(self._run(job.job_id, token), name=job.job_id)
        return job

    def _check_queue_caps(self, caller: Caller) -> None:
        """Refuse a job beyond the caps on unfinished (queued or running) jobs: the caller's own
        and everyone's. A search is one job: its trials run inside its one slot."""
        counts = self.store.unfinished_counts()
        mine, everyone = counts.get(caller.name, 0), sum(counts.values())
        if mine >= self.max_queued_jobs_per_user:
            raise ResourceExhausted(
                f"{caller.name} already has {mine} unfinished jobs (queued or running), the most one user "
                f"may have on this training service (max_queued_jobs_per_user = {self.max_queued_jobs_per_user})"
                "; wait for some to finish or cancel some, then submit again", user=caller.name)
        if everyone >= self.max_queued_jobs:
            raise ResourceExhausted(
                f"the training service already has {everyone} unfinished jobs (queued or running) of all "
                f"users, its limit (max_queued_jobs = {self.max_queued_jobs}); submit again later")

    def _token(self, caller: Caller) -> str | None:
        return caller.token or self.service_token

    async def _describe(self, spec: TrainingSpec, token: str | None) -> dict[tuple[str, str], DatasetInfo]:
        infos: dict[tuple[str, str], DatasetInfo] = {}
        for ref, where in spec.dataset_fields():
            key = (ref.dataset, ref.version_id)
            if key not in infos:
                infos[key] = await self.data.describe(ref, token, where)
        return infos

    # ------------------------------------------------------------------ read

    def get(self, job_id: str) -> JobRecord:
        return self.store.get(job_id)

    def list(self, filter: JobFilter, page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        """Newest first; the store applies beamops.runtime.pages (page-size rule, signed tokens)."""
        return self.store.list(filter, page_size, page_token)

    async def watch(self, job_id: str, after: int = 0, exclude_logs: bool = False) -> AsyncIterator[EventRecord]:
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative", field="after_sequence")
        self.store.get(job_id)
        while True:
            changed = self._event_for(job_id)
            events = self.store.events(job_id, after)
            for e in events:
                after = e.sequence
                if exclude_logs and e.kind == "log_line":
                    continue
                yield e
                if e.kind == "state_change" and e.payload.get("state") in FINAL_STATES:
                    return
            if not events:
                job = self.store.get(job_id)
                if job.final and job.last_event_sequence <= after:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    def _event_for(self, job_id: str) -> asyncio.Event:
        event = self._changed.get(job_id)
        if event is None:
            event = self._changed[job_id] = asyncio.Event()
        return event

    def _notify(self, job_id: str) -> None:
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()

    def _update(self, job_id: str, events=(), **changes) -> JobRecord:
        job = self.store.update(job_id, events, **changes)
        self._notify(job_id)
        return job

    def _transition(self, job: JobRecord, state: str, message: str = "", **changes) -> JobRecord:
        return self._update(job.job_id, [("state_change", {"previous": job.state, "state": state,
                                                           "message": message})], state=state, **changes)

    # ------------------------------------------------------------------ cancel

    async def cancel(self, caller: Caller, job_id: str, reason: str = "") -> JobRecord:
        job = self.store.get(job_id)
        if job.submitted_by != caller.name and not caller.is_admin:
            raise PermissionDenied(f"job {job_id} was submitted by {job.submitted_by}; cancelling another "
                                   "user's job needs the admin role", job=job_id)
        if job.state == CANCELLED:
            return job
        if job.state in (SUCCEEDED, FAILED, REJECTED):
            raise FailedPrecondition(f"job {job_id} already {job.state}; only queued or running jobs can "
                                     "be cancelled", job=job_id)
        if len(reason) > 1000:
            raise InvalidArgument("the reason is longer than 1000 characters", field="reason")
        self._cancel_asked.add(job_id)
        job = self._update(job_id, cancel_requested_by=caller.name, cancel_reason=reason)
        if job.state == QUEUED:
            job = self._transition(job, CANCELLED, _cancel_message(job), end_time=now())
        else:
            await self._cancel_work(job_id)
            task = self._tasks.get(job_id)
            if task is not None:
                await asyncio.wait([task], timeout=15)
        return self.store.get(job_id)

    async def _cancel_work(self, job_id: str) -> None:
        self._cancel_asked.add(job_id)
        await self._stop(job_id)

    async def _stop(self, job_id: str) -> None:
        """Stop the job's work: its worker, or every running trial of its search."""
        search = self._searches.get(job_id)
        if search is not None:
            await search.cancel()
            return
        job = self.store.get(job_id)
        executor = self.executors.get(job.executor)
        if executor is not None:
            await executor.cancel(job_id)

    # ------------------------------------------------------------------ reproduce

    async def reproduce(self, caller: Caller, job_id: str, tolerance: float = 0.0, executor: str = "",
                        publish: bool = False, idempotency_key: str = "") -> JobRecord:
        original = self.store.get(job_id)
        if original.state != SUCCEEDED:
            raise FailedPrecondition(f"job {job_id} is {original.state}; only a SUCCEEDED job can be "
                                     "reproduced", job=job_id)
        if tolerance < 0:
            raise InvalidArgument("the tolerance must not be negative", field="tolerance")
        result = original.result
        # A search is reproduced by its best trial: a single training with its hyperparameters.
        spec = replace(original.spec, seed=int(result.get("seed", original.spec.seed)),
                       executor=executor or original.executor,
                       publish=original.spec.publish if publish else None, search=None)
        if spec.model.builtin or original.spec.search is not None:
            spec = replace(spec, model=replace(spec.model, hyperparameters=result.get(
                "hyperparameters", spec.model.hyperparameters)))
        return await self.submit(caller, spec, (True, spec.splits.use_validation, True), idempotency_key,
                                 reproduces=job_id, tolerance=tolerance)

    # ------------------------------------------------------------------ running

    async def _run(self, job_id: str, token: str | None) -> None:
        try:
            async with self._slots:
                job = self.store.get(job_id)
                if job.final:
                    return
                await self._execute(job, token)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never leave a job RUNNING
            error_id = uuid.uuid4().hex[:12]
            log.exception("job %s failed inside the training service (error id %s)", job_id, error_id)
            job = self.store.get(job_id)
            if not job.final:
                message = f"internal error in the training service (error id {error_id})"
                self._transition(job, FAILED, message, end_time=now(), failure_message=message)
        finally:
            self._tasks.pop(job_id, None)
            self._cancel_asked.discard(job_id)

    async def _execute(self, job: JobRecord, token: str | None) -> None:
        job_id = job.job_id
        job = self._transition(job, RUNNING, f"running on the {job.executor} executor", start_time=now())
        executor = self.executors[job.executor]
        if not getattr(executor, "forwards_caller_token", True):
            # The worker will read with its own credential: the submitter must still be allowed
            # to read every dataset version now (a token revoked while the job was queued).
            try:
                await self._describe(job.spec, token)
            except BeamopsError as exc:
                message = f"the job did not start: {exc.message}"
                self._transition(job, FAILED, message, end_time=now(), failure_message=message)
                return
        payload = {"job_id": job_id, "spec": job.spec.to_dict(), "data_address": self.data_address,
                   "max_message_bytes": self.max_message_bytes}

        async def on_event(event: dict) -> None:
            await self._record_worker_event(job_id, event, executor)

        if job.spec.search is not None:
            work = asyncio.ensure_future(self._search(job, executor, payload, token))
        else:
            work = asyncio.ensure_future(executor.run(job_id, payload, token, on_event))
        timed_out = False
        timeout, from_spec = resolve_timeout(job.spec.timeout_s, self.job_timeout_s)
        done, _ = await asyncio.wait([work], timeout=timeout)
        if not done:
            timed_out = True
            await self._stop(job_id)
            await work
        outcome: WorkOutcome = work.result()
        job = self.store.get(job_id)
        if timed_out:
            message = timeout_message(timeout, from_spec, self.max_job_timeout_s)
            self._transition(job, FAILED, message, end_time=now(), failure_message=message)
        elif self._closing:
            message = STOP_MESSAGE
            self._transition(job, FAILED, message, end_time=now(), failure_message=message)
        elif outcome.status == "cancelled" or job_id in self._cancel_asked:
            self._transition(job, CANCELLED, _cancel_message(job), end_time=now())
        elif outcome.status != "succeeded":
            message = outcome.message or "the job failed"
            self._transition(job, FAILED, message, end_time=now(), failure_message=message)
        else:
            await self._succeed(job, outcome, token)

    async def _record_worker_event(self, job_id: str, event: dict, executor: Executor) -> None:
        kind = event.get("type")
        if kind == "worker_started":
            self._update(job_id, worker=event["worker"])
            if job_id in self._cancel_asked:
                await executor.cancel(job_id)
        elif kind == "progress":
            progress = {k: event[k] for k in ("iteration", "total_iterations", "fraction") if k in event}
            self._update(job_id, [("progress", progress)], progress=progress)
        elif kind == "metric":
            metric = {k: event[k] for k in ("name", "split", "value", "iteration")}
            job = self.store.get(job_id)
            metrics = [m for m in job.metrics if (m["name"], m["split"]) != (metric["name"], metric["split"])]
            self._update(job_id, [("metric", metric)], metrics=metrics + [metric])
        elif kind == "log":
            self._update(job_id, [("log_line", {"level": event.get("level", "INFO"),
                                                "text": str(event.get("text", ""))[:10_000]})])

    # ------------------------------------------------------------------ search

    async def _search(self, job: JobRecord, executor: Executor, payload: dict, token: str | None) -> WorkOutcome:
        """Run the trials of a search in parallel; the outcome is the best trial's (or why none)."""
        job_id, search = job.job_id, job.spec.search
        assert search is not None
        trials = expand_trials(search, job.spec.model.hyperparameters, job.spec.seed)
        capacity = await executor.capacity()
        if executor.name == "local":
            parallel = min(search.max_parallel_trials or capacity, capacity)
        else:
            parallel = search.max_parallel_trials or capacity
        total = len(trials)
        state = {"finished": 0, "pids": []}

        def progress() -> dict:
            return {"iteration": 0, "total_iterations": 0, "trials_finished": state["finished"],
                    "trials_total": total, "fraction": round(0.95 * state["finished"] / total, 6)}

        async def on_event(trial: TrialRun, event: dict) -> None:
            await self._record_trial_event(job_id, trial.index, event, state["pids"])

        async def on_started(trial: TrialRun) -> None:
            self._set_trial(job_id, trial, [("log_line", {
                "level": "INFO", "trial_index": trial.index,
                "text": f"trial {trial.index} started: {_short(trial.hyperparameters, search)}"})])

        async def on_finished(trial: TrialRun) -> None:
            state["finished"] += 1
            self._set_trial(job_id, trial, [("trial_finished", trial.to_dict()), ("progress", progress())],
                            progress=progress())

        run = SearchRun(job_id, executor, parallel, on_event, on_started, on_finished)
        self._searches[job_id] = run
        self._update(job_id, [("log_line", {"level": "INFO", "text": (
            f"{search.algorithm} search: {total} trials, up to {parallel} at once on the {executor.name} "
            f"executor; objective: {search.direction} validation {search.objective_metric}")}),
            ("progress", progress())], trials=[TrialRun(i, hp).to_dict() for i, hp in enumerate(trials)],
            progress=progress())
        if job_id in self._cancel_asked:
            await run.cancel()
        try:
            done = await run.run(payload, trials, token)
        finally:
            self._searches.pop(job_id, None)
        if run.cancelled:
            return WorkOutcome("cancelled", "the search was cancelled")
        succeeded = {t.index: t for t in done if t.state == "SUCCEEDED"}
        if not succeeded:
            failed = [t for t in done if t.state == "FAILED"]
            first = failed[0] if failed else done[0]
            return WorkOutcome("failed", f"all {total} trials of the search failed; trial {first.index}: "
                                         f"{first.failure_message}")
        metric, direction = search.objective_metric, search.direction
        best = best_trial({i: {m["name"]: m["value"] for m in t.metrics} for i, t in succeeded.items()},
                          metric, direction)
        if best is None:
            return WorkOutcome("failed", f"no trial reported the objective metric {metric!r} on the "
                                         "validation split, so no best trial could be chosen")
        winner = succeeded[best]
        winner.best = True
        value = next(m["value"] for m in winner.metrics if m["name"] == metric)
        self._set_trial(job_id, winner, [("log_line", {"level": "INFO", "text": (
            f"best trial: {best} ({metric} {value:.6g} on the validation split, {direction}; "
            f"{len(succeeded)} of {total} trials succeeded)")})])
        outcome = winner.outcome
        assert outcome is not None and outcome.result is not None
        result = dict(outcome.result, job_id=job_id)
        result["search"] = dict(algorithm=search.algorithm, trial_index=best, trials_total=total,
                                trials_succeeded=len(succeeded), objective_metric=metric, direction=direction,
                                objective_value=value)
        return WorkOutcome("succeeded", "", result=result, onnx=outcome.onnx, predictions=outcome.predictions)

    def _set_trial(self, job_id: str, trial: TrialRun, events=(), **changes) -> None:
        trials = self.store.get(job_id).trials
        trials = [trial.to_dict() if t["index"] == trial.index else t for t in trials]
        self._update(job_id, events, trials=trials, **changes)

    async def _record_trial_event(self, job_id: str, index: int, event: dict, pids: list[int]) -> None:
        """A trial's worker event: metrics and log lines are kept with the trial index; a trial's
        own progress is left out (the search reports trials finished instead)."""
        kind = event.get("type")
        if kind == "worker_started":
            worker = dict(event["worker"])
            if isinstance(worker.get("pid"), int):
                pids.append(worker.pop("pid"))
                worker["pids"] = list(pids)
            self._update(job_id, worker=worker)
        elif kind == "metric":
            metric = {k: event[k] for k in ("name", "split", "value", "iteration")}
            self._update(job_id, [("metric", {**metric, "trial_index": index})])
        elif kind == "log":
            self._update(job_id, [("log_line", {"level": event.get("level", "INFO"), "trial_index": index,
                                                "text": str(event.get("text", ""))[:10_000]})])

    async def _succeed(self, job: JobRecord, outcome: WorkOutcome, token: str | None) -> None:
        job_id = job.job_id
        result = dict(outcome.result or {})
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        np.save(job_dir / "predictions.npy", outcome.predictions)
        (job_dir / "model.onnx").write_bytes(outcome.onnx)
        gates, missed = check_gates(job.spec.quality_gates, result.get("metrics", []))
        if gates:
            result["quality_gates"] = gates
            for gate in gates:
                self._log(job_id, f"quality gate {gate['gate']}: {gate['value']:.6g} "
                                  f"({'passed' if gate['passed'] else 'MISSED'})",
                          "INFO" if gate["passed"] else "WARNING")
        if missed:
            message = ("the model was trained and checked but missed its quality gate(s): "
                       + "; ".join(f"{g['gate']} (the model reached {g['value']:.6g})" if g["value"] == g["value"]
                                   else f"{g['gate']} (the metric could not be computed)" for g in missed)
                       + ". Nothing was registered")
            self._transition(self.store.get(job_id), REJECTED, message, end_time=now(), failure_message=message,
                             result=result, metrics=[dict(m) for m in result.get("metrics", [])],
                             progress={**job.progress, "fraction": 1.0})
            return
        if job.spec.publish is not None:
            self._log(job_id, f"registering in the registry as {job.spec.publish.model} "
                              f"(model type {job.spec.publish.model_type_version})")
            try:
                registered = await self.registry.register(job_id, job.spec, result, outcome.onnx, token)
            except (RegistrationError, BeamopsError) as exc:
                message = f"the model was trained but could not be registered: {exc}"
                self._transition(self.store.get(job_id), FAILED, message, end_time=now(),
                                 failure_message=message)
                return
            result["parameters"] = {"model": registered.model, "version": registered.version}
            result["artifact_id"] = registered.artifact_id
            self._log(job_id, f"registered parameters version {registered.version} of {registered.model}")
        reproduction: dict = {}
        if job.reproduces:
            original = self.store.get(job.reproduces)
            original_predictions = _load_predictions(self.jobs_dir / job.reproduces / "predictions.npy")
            reproduction = compare_runs(original.result, result, original_predictions, outcome.predictions,
                                        self._tolerances.pop(job_id, 0.0), original.executor, job.executor)
            self._log(job_id, reproduction["summary"])
        metrics = [dict(m) for m in result.get("metrics", [])]
        job = self.store.get(job_id)
        message = "trained, checked and registered" if job.spec.publish else "trained and checked"
        if "search" in result:
            message = (f"best of {result['search']['trials_total']} trials (trial "
                       f"{result['search']['trial_index']}) {message}")
        self._transition(job, SUCCEEDED, message, end_time=now(), result=result, metrics=metrics,
                         reproduction=reproduction,
                         progress={**job.progress, "fraction": 1.0})

    def _log(self, job_id: str, text: str, level: str = "INFO") -> None:
        self._update(job_id, [("log_line", {"level": level, "text": text})])


def check_gates(gates: tuple[str, ...], metrics: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every gate with the model's figure and whether it passed; and the gates missed."""
    values = {(m["split"], m["name"]): float(m["value"]) for m in metrics if not m.get("iteration")}
    checked = []
    for text in gates:
        gate = parse_quality_gate(text)
        value = values.get((gate.split, gate.metric), float("nan"))
        checked.append(dict(gate=gate.text, value=value, passed=gate.passes(value)))
    return checked, [g for g in checked if not g["passed"]]


def _short(hyperparameters: dict, search) -> str:
    """The searched hyperparameters of a trial, e.g. "max_depth=4, learning_rate=0.1"."""
    return ", ".join(f"{p.name}={hyperparameters.get(p.name)!r}" for p in search.parameters)


def _cancel_message(job: JobRecord) -> str:
    who = job.cancel_requested_by or "the service"
    return f"cancelled by {who}" + (f": {job.cancel_reason}" if job.cancel_reason else "")


def _load_predictions(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None


__all__ = ["JobManager", "Caller", "RESTART_MESSAGE"]
