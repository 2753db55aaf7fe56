"""Runs the trials of one hyperparameter search on an executor, at most ``parallel`` at once.

Each trial is an ordinary training run of the worker (the job's spec with the trial's
hyperparameters and no search) under its own id, ``<job id>.trial-<index>``: locally one
worker subprocess per trial (a bounded pool), on Dask one task per trial. Trials start in
index order. A failed trial is recorded and the others go on; :meth:`SearchRun.cancel` stops
the running trials and starts no new ones. No gRPC and no store here: the job manager records
what the callbacks report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .executor import Executor, WorkOutcome

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"


def trial_id(job_id: str, index: int) -> str:
    return f"{job_id}.trial-{index:03d}"


def _now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass
class TrialRun:
    index: int
    hyperparameters: dict
    state: str = QUEUED
    metrics: list[dict] = field(default_factory=list)  # final validation metrics
    failure_message: str = ""
    start_us: int = 0
    end_us: int = 0
    best: bool = False
    outcome: WorkOutcome | None = None

    def to_dict(self) -> dict:
        return dict(index=self.index, hyperparameters=dict(self.hyperparameters), state=self.state,
                    metrics=list(self.metrics), failure_message=self.failure_message,
                    start_us=self.start_us, end_us=self.end_us, best=self.best)


TrialEvent = Callable[[TrialRun, dict], Awaitable[None]]
TrialChange = Callable[[TrialRun], Awaitable[None]]


class SearchRun:
    def __init__(self, job_id: str, executor: Executor, parallel: int, on_event: TrialEvent,
                 on_started: TrialChange, on_finished: TrialChange) -> None:
        self.job_id = job_id
        self.executor = executor
        self.parallel = max(1, parallel)
        self.on_event = on_event
        self.on_started = on_started
        self.on_finished = on_finished
        self.trials: list[TrialRun] = []
        self._running: set[int] = set()
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def run(self, payload: dict, hyperparameters: list[dict], token: str | None) -> list[TrialRun]:
        """Run every trial (``payload`` is the job's worker payload); returns them, final."""
        self.trials = [TrialRun(i, hp) for i, hp in enumerate(hyperparameters)]
        slots = asyncio.Semaphore(self.parallel)

        async def one(trial: TrialRun) -> None:
            async with slots:
                await self._run_trial(trial, payload, token)

        await asyncio.gather(*(one(t) for t in self.trials))
        return self.trials

    async def _run_trial(self, trial: TrialRun, payload: dict, token: str | None) -> None:
        if self._cancelled:
            trial.state, trial.failure_message = CANCELLED, "the search was cancelled before the trial started"
            await self.on_finished(trial)
            return
        sub_id = trial_id(self.job_id, trial.index)
        spec = dict(payload["spec"])
        spec["model"] = {**spec["model"], "hyperparameters": dict(trial.hyperparameters)}
        spec["search"] = None
        trial_payload = {**payload, "job_id": sub_id, "spec": spec}
        trial.state, trial.start_us = RUNNING, _now_us()
        self._running.add(trial.index)
        await self.on_started(trial)

        async def on_event(event: dict) -> None:
            await self.on_event(trial, event)
            if event.get("type") == "worker_started" and self._cancelled:
                await self.executor.cancel(sub_id)

        try:
            outcome = await self.executor.run(sub_id, trial_payload, token, on_event)
        except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the search
            log.exception("trial %s could not run", sub_id)
            outcome = WorkOutcome("failed", f"the trial could not run: {type(exc).__name__}")
        finally:
            self._running.discard(trial.index)
        trial.end_us = _now_us()
        if outcome.status == "succeeded":
            trial.state, trial.outcome = SUCCEEDED, outcome
            trial.metrics = [dict(m) for m in (outcome.result or {}).get("metrics", [])
                             if m.get("split") == "validation"]
        elif outcome.status == "cancelled" or self._cancelled:
            trial.state, trial.failure_message = CANCELLED, outcome.message or "the trial was cancelled"
        else:
            trial.state, trial.failure_message = FAILED, outcome.message or "the trial failed"
        await self.on_finished(trial)

    async def cancel(self) -> None:
        """Stop the running trials; trials not started yet never start."""
        self._cancelled = True
        await asyncio.gather(*(self.executor.cancel(trial_id(self.job_id, i)) for i in list(self._running)),
                             return_exceptions=True)


__all__ = ["SearchRun", "TrialRun", "trial_id"]
