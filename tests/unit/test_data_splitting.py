"""Deterministic splits: the part of an entry depends only on the seed and its position."""

from __future__ import annotations

import numpy as np
import pytest

from beamops.data.model import SplitSpec
from beamops.data.splitting import assign, check_split, split_counts
from beamops.runtime.errors import InvalidArgument


def test_same_seed_same_split_different_seed_different_split():
    spec = SplitSpec(train=0.7, validation=0.2, test=0.1, seed=42)
    positions = np.arange(100_000)
    a, b = assign(spec, positions), assign(spec, positions)
    assert np.array_equal(a, b)
    other = assign(spec.model_copy(update={"seed": 43}), positions)
    assert (a != other).mean() > 0.3


def test_assignment_of_a_batch_does_not_depend_on_batching():
    spec = SplitSpec(train=0.5, validation=0.25, test=0.25, seed=7)
    whole = assign(spec, np.arange(10_000))
    pieces = np.concatenate([assign(spec, np.arange(s, min(s + 777, 10_000)))
                             for s in range(0, 10_000, 777)])
    assert np.array_equal(whole, pieces)


def test_fractions_are_respected_and_counts_add_up():
    spec = SplitSpec(train=0.7, validation=0.2, test=0.1, seed=1)
    infos = split_counts(spec, 200_000)
    assert [i.name for i in infos] == ["train", "validation", "test"]
    assert sum(i.entry_count for i in infos) == 200_000
    for info in infos:
        assert abs(info.entry_count / 200_000 - info.fraction) < 0.01


def test_zero_fraction_parts_are_left_out():
    infos = split_counts(SplitSpec(train=0.8, validation=0.0, test=0.2, seed=3), 1000)
    assert [i.name for i in infos] == ["train", "test"]


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.2, 0.0), (0.3, 0.3, 0.3)])
def test_bad_fractions_are_invalid(fractions):
    with pytest.raises(InvalidArgument):
        check_split(SplitSpec(train=fractions[0], validation=fractions[1], test=fractions[2], seed=0))
