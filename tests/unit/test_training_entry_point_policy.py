"""User models come only from the packages an administrator allows (importing runs code)."""

from __future__ import annotations

import dataclasses

import pytest

from beamops.runtime.errors import PermissionDenied
from beamops.training.spec import _check_model, ModelChoice


def model(entry_point: str) -> ModelChoice:
    fields = {f.name: f.default for f in dataclasses.fields(ModelChoice)
              if f.default is not dataclasses.MISSING}
    return dataclasses.replace(ModelChoice(**fields), entry_point=entry_point, builtin="", task="classification")


@pytest.mark.parametrize("entry_point", ["os:system", "subprocess.Popen:x", "beamops.training.examplesX.m:C"])
def test_modules_outside_the_allowlist_are_refused(entry_point):
    with pytest.raises(PermissionDenied, match="entry_point_modules"):
        _check_model(model(entry_point), None, ("beamops.training.examples",))


def test_allowed_packages_and_their_submodules_pass():
    checked = _check_model(model("beamops.training.examples.logistic:Logistic"), None, ("beamops.training.examples",))
    assert checked.entry_point == "beamops.training.examples.logistic:Logistic"
