"""Failures of a job's later steps, with messages meant for the physicist who submitted it."""

from __future__ import annotations


class RegistrationError(Exception):
    """The model was trained but the registry refused or could not take it."""


def dask_failure_message(exc: BaseException) -> str:
    """Why a Dask task failed, for the physicist: no worker addresses, one sentence."""
    import re

    if type(exc).__name__ == "KilledWorker":
        return ("the Dask workers running this job died, again after each retry (often out of "
                "memory): check the workers' memory limit and logs, or use a smaller batch")
    first_line = (str(exc).splitlines() or [""])[0]
    first_line = re.sub(r"\b(?:tcp|tls|inproc|ucx)://\S+", "<worker>", first_line)
    return f"the Dask task failed: {type(exc).__name__}: {first_line[:300]}"
