"""Semantic versions and the parameters-version rule table (DESIGN.md), row by row."""

from __future__ import annotations

import pytest

from beamops.registry.versioning import (
    ParamsVersion, SemVer, latest_compatible, next_params_version, parse_params_version, parse_semver,
)
from beamops.runtime.errors import FailedPrecondition, InvalidArgument

P = ParamsVersion


@pytest.mark.parametrize("type_version, existing, expected", [
    ("1.0.0", [], "1.0"),                                   # row 1: none yet
    ("1.0.0", [P(1, 0)], "1.1"),                            # row 2
    ("1.6.0", [P(1, 0), P(1, 1)], "1.2"),                   # row 3
    ("2.0.0", [P(1, 0), P(1, 1), P(1, 2)], "2.0"),          # row 4
    ("3.3.0", [P(3, 0), P(3, 3), P(4, 0)], "3.4"),          # row 6: 3.3 exists
    ("3.3.0", [P(3, 3), P(4, 0)], "3.4"),                   # row 6, exactly as in the table
])
def test_rule_table(type_version, existing, expected):
    assert str(next_params_version(parse_semver(type_version), existing)) == expected


def test_rule_table_row_5_is_ambiguous():
    with pytest.raises(FailedPrecondition) as err:
        next_params_version(parse_semver("3.3.0"), [P(1, 0), P(4, 0)], model="calo")
    message = err.value.message
    assert "up to 4.0" in message and "none of major 3" in message and "calo" in message


def test_minor_numbers_compare_as_numbers():
    assert str(next_params_version(SemVer(1, 0, 0), [P(1, 9), P(1, 10), P(1, 2)])) == "1.11"


def test_latest_compatible():
    existing = [P(1, 0), P(1, 2), P(2, 0), P(1, 10)]
    assert latest_compatible(SemVer(1, 6, 0), existing) == P(1, 10)
    assert latest_compatible(SemVer(2, 1, 3), existing) == P(2, 0)
    assert latest_compatible(SemVer(3, 0, 0), existing) is None


@pytest.mark.parametrize("text", ["1.0", "1.0.0.0", "01.0.0", "1.0.0-rc1", "v1.0.0", "", "a.b.c", "1.-1.0"])
def test_malformed_semver(text):
    with pytest.raises(InvalidArgument) as err:
        parse_semver(text)
    assert "MAJOR.MINOR.PATCH" in err.value.message


def test_parse():
    assert parse_semver("10.20.30") == SemVer(10, 20, 30)
    assert parse_params_version("3.14") == P(3, 14)
    for bad in ("3", "3.1.0", "03.1", "x"):
        with pytest.raises(InvalidArgument):
            parse_params_version(bad)
