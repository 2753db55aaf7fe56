"""Dask failures become one plain sentence without worker addresses."""

from beamops.training.failures import dask_failure_message


class KilledWorker(Exception):
    pass


def test_killed_worker_says_what_happened_and_what_to_do():
    message = dask_failure_message(KilledWorker("Attempted to run task 'job-1' on 4 different workers, "
                                                "but all those workers died. The last worker was tcp://10.0.0.7:40121"))
    assert "died" in message and "memory" in message and "tcp://" not in message


def test_other_failures_keep_the_reason_but_not_the_address():
    message = dask_failure_message(OSError("Timed out trying to connect to tcp://10.1.2.3:8786 after 30 s\nmore"))
    assert message == "the Dask task failed: OSError: Timed out trying to connect to <worker> after 30 s"
