"""Group commit (pure concurrency logic): a caller alone runs alone; callers that arrive while a
group commits share the next group; each caller gets its own value or its own exception."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from beamops.registry.group_commit import GroupCommit, Outcome


def test_a_caller_alone_forms_a_group_of_one():
    groups = []

    def run(changes):
        groups.append(len(changes))
        return [Outcome(change()) for change in changes]

    commit = GroupCommit(run)
    assert commit.submit(lambda: 41) == 41
    assert commit.submit(lambda: 42) == 42
    assert groups == [1, 1]


def test_callers_arriving_during_a_commit_share_the_next_group_and_keep_their_own_results():
    first_started, release = threading.Event(), threading.Event()
    groups = []

    def run(changes):
        groups.append(len(changes))
        if len(groups) == 1:
            first_started.set()
            release.wait(10)  # the first group commits slowly; the others queue meanwhile
        return [Outcome(change()) for change in changes]

    commit = GroupCommit(run, max_batch=64)
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(commit.submit, lambda: "first")
        assert first_started.wait(10)
        others = [pool.submit(commit.submit, lambda i=i: i) for i in range(8)]
        while len(commit._queue) < 8:  # all eight are waiting for the next group
            threading.Event().wait(0.001)
        release.set()
        assert first.result() == "first"
        assert [f.result() for f in others] == list(range(8))
    assert groups == [1, 8]


def test_an_error_reaches_only_its_own_caller():
    def run(changes):
        outcomes = []
        for change in changes:
            try:
                outcomes.append(Outcome(change()))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(Outcome(error=exc))
        return outcomes

    commit = GroupCommit(run)

    def bad():
        raise LookupError("no such model")

    with pytest.raises(LookupError, match="no such model"):
        commit.submit(bad)
    assert commit.submit(lambda: "fine") == "fine"


def test_groups_are_bounded_and_everyone_is_served():
    sizes = []
    gate = threading.Event()

    def run(changes):
        sizes.append(len(changes))
        gate.wait(10)
        return [Outcome(change()) for change in changes]

    commit = GroupCommit(run, max_batch=4)
    with ThreadPoolExecutor(11) as pool:
        futures = [pool.submit(commit.submit, lambda i=i: i * i) for i in range(11)]
        threading.Event().wait(0.2)
        gate.set()
        assert [f.result() for f in futures] == [i * i for i in range(11)]
    assert max(sizes) <= 4 and sum(sizes) == 11
