"""Semantic versions of model types and the rule that generates parameters versions.

Model types are ``MAJOR.MINOR.PATCH``; parameters are ``MAJOR.MINOR`` where MAJOR is the model
type's major version. The registry picks the next parameters version (from the CERN controls ML
platform):

  | model type | highest existing parameters | generated             |
  |------------|-----------------------------|-----------------------|
  | 1.0.0      | none yet                    | 1.0                   |
  | 1.0.0      | 1.0                         | 1.1                   |
  | 1.6.0      | 1.1                         | 1.2                   |
  | 2.0.0      | 1.2                         | 2.0                   |
  | 3.3.0      | 4.0 (no 3.x)                | refused: ambiguous    |
  | 3.3.0      | 4.0 (3.3 exists)            | 3.4                   |

That is: the next minor of the type's major when that major has parameters; ``MAJOR.0`` when
no parameters of a higher major exist; otherwise the version would be ambiguous (it would sort
below newer parameters of a higher major) and is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from beamops.runtime.errors import FailedPrecondition, InvalidArgument

_SEMVER = re.compile(r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")
_PARAMS = re.compile(r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")


@dataclass(frozen=True, order=True)
class SemVer:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, order=True)
class ParamsVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_semver(text: str, field: str = "version") -> SemVer:
    """``"1.6.0"`` -> SemVer(1, 6, 0); INVALID_ARGUMENT for anything else."""
    match = _SEMVER.fullmatch(text or "")
    if not match:
        raise InvalidArgument(
            f"invalid model type version {text[:40]!r}: expected MAJOR.MINOR.PATCH, e.g. '1.6.0' "
            "(non-negative integers without leading zeros)",
            field=field,
        )
    return SemVer(*(int(g) for g in match.groups()))


def parse_params_version(text: str, field: str = "version") -> ParamsVersion:
    """``"1.2"`` -> ParamsVersion(1, 2); INVALID_ARGUMENT for anything else."""
    match = _PARAMS.fullmatch(text or "")
    if not match:
        raise InvalidArgument(
            f"invalid parameters version {text[:40]!r}: expected MAJOR.MINOR, e.g. '1.2'",
            field=field,
        )
    return ParamsVersion(*(int(g) for g in match.groups()))


def next_params_version(
    model_type: SemVer, existing: Iterable[ParamsVersion], model: str = "the model"
) -> ParamsVersion:
    """The parameters version to generate for ``model_type`` given the versions that exist."""
    existing = list(existing)
    same_major = [v for v in existing if v.major == model_type.major]
    if same_major:
        return ParamsVersion(model_type.major, max(same_major).minor + 1)
    higher = [v for v in existing if v.major > model_type.major]
    if not higher:
        return ParamsVersion(model_type.major, 0)
    highest = max(existing)
    raise FailedPrecondition(
        f"cannot generate a parameters version of {model} for model type {model_type}: "
        f"parameters up to {highest} exist but none of major {model_type.major}, so "
        f"{model_type.major}.0 would be ambiguous (it would sort below {highest}). Register these "
        f"parameters for a model type of major {highest.major}, or create a model type with a new "
        "major version",
        model=model,
    )


def latest_compatible(model_type: SemVer, existing: Iterable[ParamsVersion]) -> ParamsVersion | None:
    """The highest parameters version that fits ``model_type`` (same MAJOR), or None."""
    fitting = [v for v in existing if v.major == model_type.major]
    return max(fitting) if fitting else None
