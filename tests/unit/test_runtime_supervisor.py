"""beamops-stack's restart policy (beamops.runtime.supervisor): when a service that exited is
started again, the backoff and its cap, the crash-loop limit, and what `status` shows. Pure logic:
times are numbers passed in, no process runs."""

from __future__ import annotations

import signal

from beamops.runtime.supervisor import (
    GAVE_UP, RESTARTING, RUNNING, RestartPolicy, Supervision, alerts, describe_exit, exit_column,
)

WALL = "2025-01-01T03:00:00+00:00"


def crash(book: Supervision, name: str, at: float, how: str = "killed by SIGKILL"):
    return book.exited(name, how, at, WALL)


def test_backoff_doubles_from_one_second_and_is_capped():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert RestartPolicy(first_delay_s=0.5, factor=3, max_delay_s=10).delay(4) == 10


def test_an_exit_schedules_a_restart_after_the_delay_and_the_restart_is_counted():
    book = Supervision(("registry", "inference"))
    book.started("inference", 100, now=0.0)
    book.started("registry", 99, now=0.0)
    decision = crash(book, "inference", at=5.0)
    assert decision.restart_in_s == 1 and not decision.gave_up
    assert "inference (pid 100) killed by SIGKILL" in decision.message
    assert book.records["inference"].state == RESTARTING
    assert book.running() == {"registry": 99}
    assert book.due(5.5) == []
    assert book.due(6.0) == ["inference"]
    book.started("inference", 101, now=6.0)
    record = book.records["inference"]
    assert (record.state, record.pid, record.restarts) == (RUNNING, 101, 1)
    assert (record.last_exit, record.last_exit_pid, record.last_exit_at) == ("killed by SIGKILL", 100, WALL)
    assert book.due(100.0) == []
    assert book.records["registry"].restarts == 0


def test_quick_exits_in_a_row_back_off_and_a_stable_run_starts_over():
    policy = RestartPolicy(first_delay_s=1, max_delay_s=30, stable_s=60, give_up_after=100)
    book = Supervision(("data",), policy)
    now, delays = 0.0, []
    book.started("data", 1, now)
    for pid in range(2, 9):
        now += 2  # each run ends 2 s after its start: a crash loop
        delays.append(crash(book, "data", now, "exit code 1").restart_in_s)
        now += delays[-1]
        book.started("data", pid, now)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    now += 60  # this run was stable: the next exit waits the first delay again
    assert crash(book, "data", now).restart_in_s == 1
    assert book.records["data"].restarts == 7


def test_gives_up_after_the_crash_loop_limit_and_says_so():
    book = Supervision(("training",), RestartPolicy(give_up_after=3))
    now = 0.0
    book.started("training", 10, now)
    for pid in (11, 12):
        now += 1
        decision = crash(book, "training", now, "exit code 2")
        assert not decision.gave_up
        now += decision.restart_in_s
        book.started("training", pid, now)
    decision = crash(book, "training", now + 1, "exit code 2")
    assert decision.gave_up and decision.restart_in_s is None
    assert decision.message.startswith("ALERT:") and "gave up on training" in decision.message
    assert book.records["training"].state == GAVE_UP
    assert book.due(1e9) == [] and book.running() == {}
    snapshot = book.snapshot(now)
    assert snapshot["training"]["state"] == GAVE_UP and snapshot["training"]["restarts"] == 2
    [line] = alerts(snapshot)
    assert "gave up on training" in line and "exit code 2" in line and "up" in line
    assert exit_column(snapshot["training"]).endswith("GAVE UP")


def test_a_failure_to_start_counts_as_a_quick_exit():
    book = Supervision(("registry",), RestartPolicy(give_up_after=2))
    book.started("registry", 1, 0.0)
    crash(book, "registry", 100.0)
    first = book.start_failed("registry", "OSError('no python')", 101.0, WALL)
    assert first.gave_up  # two quick exits in a row: the one at 100 s, then this
    assert "could not be started: OSError('no python')" in book.records["registry"].last_exit


def test_snapshot_is_what_status_shows():
    book = Supervision(("registry", "inference"))
    book.started("registry", 7, 0.0)
    book.started("inference", 8, 0.0)
    crash(book, "inference", 2.0)
    snapshot = book.snapshot(2.25)
    assert snapshot["registry"] == {"pid": 7, "state": RUNNING, "restarts": 0, "last_exit": "",
                                    "last_exit_pid": None, "last_exit_at": "", "restart_in_s": None}
    assert snapshot["inference"]["state"] == RESTARTING and snapshot["inference"]["restart_in_s"] == 0.8
    assert exit_column(snapshot["registry"]) == "-" and exit_column(None) == "-"
    assert exit_column(snapshot["inference"]) == f"killed by SIGKILL at {WALL}, restarting in 0.8 s"
    assert alerts(snapshot) == []


def test_exit_statuses_in_words():
    # Linux wait statuses: the signal number in the low bits, an exit code in the second byte.
    assert describe_exit(int(signal.SIGKILL)) == "killed by SIGKILL"
    assert describe_exit(int(signal.SIGSEGV)) == "killed by SIGSEGV"
    assert describe_exit(3 << 8) == "exit code 3" and describe_exit(0) == "exit code 0"
    assert "unknown" in describe_exit(None)
