"""Processes an earlier run of the service left behind when it was killed (SIGKILL, OOM): the
bundled Triton and the gateway run in process groups of their own, so they outlive a killed
service. At the next start the service finds them by their pid files and stops them, before it
starts new ones (else an orphaned Triton holds memory and its ports forever)."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from beamops.runtime.processes import command_line, ended

log = logging.getLogger(__name__)


def stop_leftover(pid_file: Path, binary: Path, *, what: str, group: bool = False,
                  term_timeout_s: float = 5.0) -> bool:
    """Stops the process ``pid_file`` names if it is alive and runs ``binary`` (a pid reused by
    another program is left alone): SIGTERM, SIGKILL after ``term_timeout_s``; with ``group``,
    its whole process group (Triton's Python-backend stubs). Removes the pid file. True if
    there was such a process."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    argv = command_line(pid)
    if argv is None or os.fsencode(str(binary)) not in argv or pid == os.getpid():
        pid_file.unlink(missing_ok=True)
        return False
    log.warning("stopping %s pid %d, left running by an earlier run", what, pid)
    send = os.killpg if group else os.kill
    for sig, wait_s in ((signal.SIGTERM, term_timeout_s), (signal.SIGKILL, 2.0)):
        try:
            send(pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        if _wait_gone(pid, wait_s):
            break
    pid_file.unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Waits for a process that is not our child to end; True if it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ended(pid):
            return True
        time.sleep(0.05)
    return False
