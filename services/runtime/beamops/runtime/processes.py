"""What Linux's /proc says about a process that is not necessarily our child (pid files of
services and of the helpers they start)."""

from __future__ import annotations

import os
from pathlib import Path


def command_line(pid: int) -> list[bytes] | None:
    """The process's argv, or None when there is no such process (or no /proc)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent to reap it: either way it runs no more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc: trust kill(0)
    return state in ("Z", "X")
