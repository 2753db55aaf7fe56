"""The training worker: runs one job out of the service process.

Locally: ``python -m beamops.training.worker <job file>`` (started by the LocalExecutor with an
argument list, never a shell). The job file is JSON written by the service; the caller's token
comes on stdin, so it is never on disk. Events go, one JSON object per line, to the events file
the service tails; the outcome goes to ``outcome.json`` (written last), the model to
``model.onnx`` and the test predictions to ``predictions.npy``. SIGTERM asks the job to stop at
the next iteration. The job file's ``limits`` (memory, CPU time) are set on this process before
any job code runs (:func:`beamops.training.limits.apply_in_worker`).

On Dask: :func:`run_on_dask` is the task; events go through a ``distributed.Queue`` and a
``distributed.Variable`` carries the cancellation flag. No token is a task argument (the
scheduler keeps task arguments and any cluster client could read them): the task reads the
data service with the worker's own credential, a reader-role token in the file named by the
worker's environment variable ``BEAMOPS_DASK_WORKER_TOKEN_FILE`` (compose.yaml's ``dask-init``
job makes it; re-read for every task, so a new token counts at once).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .data_client import DataReadError, read_split
from .limits import JobLimits, apply_in_worker, memory_message
from .runner import JobCancelled, RunOutcome, run_training
from .spec import DatasetRef, TrainingSpec
from .trainers import TrainingFailure

log = logging.getLogger("beamops.training.worker")

WORKER_TOKEN_ENV = "BEAMOPS_DASK_WORKER_TOKEN_FILE"


def execute(payload: dict, token: str | None, emit: Callable[[dict], None],
            should_stop: Callable[[], bool]) -> tuple[dict, RunOutcome | None]:
    """Run the job in ``payload``; returns ({"status", "message"}, outcome or None)."""
    spec = TrainingSpec.from_dict(payload["spec"])

    def load(ref: DatasetRef, split: str, branches: list[str], pad):
        lengths = dict(pad) if isinstance(pad, Mapping) else None
        return read_split(payload["data_address"], token, ref, split, branches,
                          spec.jagged_pad_length if lengths is not None else pad,
                          payload.get("max_message_bytes", 256 * 1024 * 1024), branch_pad_lengths=lengths)

    try:
        outcome = run_training(payload["job_id"], spec, load, emit, should_stop)
    except JobCancelled:
        return {"status": "cancelled", "message": "the job was cancelled"}, None
    except (TrainingFailure, DataReadError) as exc:
        emit({"type": "log", "level": "ERROR", "text": str(exc)})
        return {"status": "failed", "message": str(exc)}, None
    except MemoryError:
        return {"status": "failed", "message": _out_of_memory(payload)}, None
    except Exception as exc:  # noqa: BLE001 - training code: report it, with the traceback in the log
        emit({"type": "log", "level": "ERROR", "text": traceback.format_exc()})
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        return {"status": "failed", "message": f"training failed: {type(exc).__name__}: {first}"}, None
    return {"status": "succeeded", "message": ""}, outcome


def _out_of_memory(payload: dict) -> str:
    limit = JobLimits.from_dict(payload.get("limits")).memory_bytes
    if limit:
        return memory_message(limit)
    return "the worker ran out of memory; use fewer events or a machine with more memory"


# --------------------------------------------------------------------------- local subprocess


class _LineEmitter(io.TextIOBase):
    """A text stream turning each written line into a log event (stdout/stderr of the job)."""

    def __init__(self, emit: Callable[[dict], None], level: str) -> None:
        self._emit, self._level, self._pending = emit, level, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if line.strip():
                self._emit({"type": "log", "level": self._level, "text": line[:10_000]})
        return len(text)


class _EmitHandler(logging.Handler):
    def __init__(self, emit: Callable[[dict], None]) -> None:
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        level = {logging.WARNING: "WARNING", logging.ERROR: "ERROR", logging.CRITICAL: "ERROR"}.get(
            record.levelno, "INFO")
        self._emit({"type": "log", "level": level, "text": record.getMessage()[:10_000]})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m beamops.training.worker <job file>", file=sys.stderr)
        return 2
    payload = json.loads(Path(argv[0]).read_text())
    apply_in_worker(JobLimits.from_dict(payload.get("limits")))  # before any job code
    token = sys.stdin.readline().strip() or None
    out_dir = Path(payload["output_dir"])
    events = open(payload["events_path"], "a", buffering=1)

    def emit(event: dict) -> None:
        event = {**event, "time": time.time()}
        events.write(json.dumps(event) + "\n")
        events.flush()

    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("asked", True))
    logging.captureWarnings(True)
    logging.getLogger().addHandler(_EmitHandler(emit))
    logging.getLogger().setLevel(logging.INFO)
    sys.stdout = _LineEmitter(emit, "INFO")
    sys.stderr = _LineEmitter(emit, "WARNING")

    status, outcome = execute(payload, token, emit, lambda: stop["asked"])
    if outcome is not None:
        try:
            (out_dir / "model.onnx").write_bytes(outcome.onnx)
            np.save(out_dir / "predictions.npy", outcome.predictions)
            (out_dir / "result.json").write_text(json.dumps(outcome.result))
        except MemoryError:
            status = {"status": "failed", "message": _out_of_memory(payload)}
    tmp = out_dir / "outcome.json.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, out_dir / "outcome.json")
    events.close()
    return 0 if status["status"] == "succeeded" else 1


# --------------------------------------------------------------------------- Dask task


def events_queue_name(job_id: str) -> str:
    return f"beamops-training-events-{job_id}"


def cancel_variable_name(job_id: str) -> str:
    return f"beamops-training-cancel-{job_id}"


def worker_data_token() -> tuple[str | None, str]:
    """This Dask worker's own data credential (never a user's) and, when there is none, why."""
    path = os.environ.get(WORKER_TOKEN_ENV, "")
    if not path:
        return None, (f"this Dask worker has no data credential ({WORKER_TOKEN_ENV} is not set): "
                      "reads work only if the data service does not require tokens")
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        return None, f"this Dask worker cannot read its data credential ({WORKER_TOKEN_ENV}): {exc.strerror}"
    return (token, "") if token else (None, f"the file named by {WORKER_TOKEN_ENV} is empty")


def run_on_dask(payload: dict) -> dict[str, Any]:
    """The Dask task: same run as the local worker, with the worker's own data credential;
    returns the outcome (bytes included)."""
    from distributed import Queue, Variable, get_client, get_worker

    client = get_client()
    job_id = payload["job_id"]
    queue = Queue(events_queue_name(job_id), client=client)
    flag = Variable(cancel_variable_name(job_id), client=client)
    checked = {"at": 0.0, "stop": False}

    def emit(event: dict) -> None:
        queue.put({**event, "time": time.time()})

    def should_stop() -> bool:
        now = time.monotonic()
        if not checked["stop"] and now - checked["at"] >= 0.5:
            checked["at"] = now
            try:
                checked["stop"] = bool(flag.get(timeout=5))
            except Exception:  # noqa: BLE001 - flag not set yet, or the scheduler is slow
                pass
        return checked["stop"]

    emit({"type": "log", "level": "INFO", "text": f"running on Dask worker {get_worker().address}"})
    token, missing = worker_data_token()
    if missing:
        emit({"type": "log", "level": "WARNING", "text": missing})
    status, outcome = execute(payload, token, emit, should_stop)
    out: dict[str, Any] = dict(status)
    if outcome is not None:
        buffer = io.BytesIO()
        np.save(buffer, outcome.predictions)
        out.update(result=outcome.result, onnx=outcome.onnx, predictions=buffer.getvalue())
    return out


if __name__ == "__main__":
    sys.exit(main())
