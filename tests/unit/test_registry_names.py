"""Allowlisted names of the registry (models, aliases, tags): the one rule of every resource kind
(beamops.runtime.names; tests/unit/test_names.py checks it for every kind)."""

from __future__ import annotations

import pytest

from beamops.registry.names import check_action, check_name
from beamops.runtime.errors import InvalidArgument


@pytest.mark.parametrize("name", ["a", "jet-tagger", "ECAL_calib.v2", "0", "x" * 100, "a.b-c_d", "JetTagger",
                                  "PHYSLITE", "ttbar_2018"])
def test_allowed(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name, problem", [
    ("", "empty"), ("a/b", "'/'"), ("..", '".."'), ("a..b", '".."'), ("nul\x00", "U+0000"),
    ("café", "U+00E9"), ("ｊｅｔ", "U+FF4A"), ("-x", "start with a letter or a digit"),
    ("x" * 101, "101 characters"), ("a b", "U+0020"), (".hidden", "start with"),
])
def test_refused_with_a_clear_message(name, problem):
    with pytest.raises(InvalidArgument) as err:
        check_name(name, "model name")
    assert problem in err.value.message
    assert "model name" in err.value.message and "letters, digits" in err.value.message
    assert "case-sensitive" in err.value.message
    assert err.value.field == "model name"


def test_actions():
    assert check_action("deployment.deploy") == "deployment.deploy"
    for bad in ("deploy", "Deployment.deploy", "a.b c", "a." + "b" * 40):
        with pytest.raises(InvalidArgument):
            check_action(bad)
