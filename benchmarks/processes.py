"""Stopping the processes a benchmark started (stdlib only: also used from the MLflow venv)."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen, wait_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``wait_s`` seconds."""
    process.terminate()
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
