"""Hyperparameter search: the search spec as typed values, its validation, and its trials.

No gRPC and no I/O here. :func:`validate_search` checks a search at submit time (every problem
is an ``InvalidArgument`` naming the field, e.g. ``spec.search.parameters[1].name``);
:func:`expand_trials` turns a validated search into the full hyperparameters of each trial:

- grid: every combination of the parameters' ``values``, in order (the last parameter varies
  fastest), like ``itertools.product``;
- random: ``num_trials`` draws from a ``numpy.random.default_rng(seed)`` generator, parameter by
  parameter in spec order: the same seed gives the same trials, on any machine.

:func:`best_trial` picks the trial with the best objective value on the validation split.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

from beamops.runtime.errors import InvalidArgument

from . import hyperparameters as hp

ALGORITHMS = ("grid", "random")
DIRECTIONS = ("maximize", "minimize")
# Metrics where higher is better; every other metric is minimised by default.
HIGHER_IS_BETTER = ("roc_auc", "accuracy", "r2")
NUMERIC_KINDS = ("int", "float", "int_or_none")


@dataclass(frozen=True)
class SearchParameter:
    """One searched hyperparameter: explicit ``values``, or (random search) a range."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log_scale: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SearchSpec:
    """A grid or random search (see job.proto SearchSpec)."""

    algorithm: str  # "grid" or "random"; "" before validation when not given
    parameters: tuple[SearchParameter, ...] = ()
    num_trials: int = 0
    max_parallel_trials: int = 0
    objective_metric: str = ""
    direction: str = ""  # "maximize" or "minimize"; "" before validation means: by metric

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for p in data["parameters"]:
            p["values"] = None if p["values"] is None else list(p["values"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchSpec":
        d = dict(data)
        params = tuple(
            SearchParameter(**{**p, "values": None if p.get("values") is None else tuple(p["values"])})
            for p in d.pop("parameters", ()))
        return cls(parameters=params, **d)

    @property
    def trial_count(self) -> int:
        if self.algorithm == "grid":
            count = math.prod(len(p.values or ()) for p in self.parameters)
            return min(count, self.num_trials) if self.num_trials else count
        return self.num_trials


def default_direction(metric: str) -> str:
    return "maximize" if metric in HIGHER_IS_BETTER else "minimize"


def validate_search(search: SearchSpec, *, builtin: str, metrics: Sequence[str],
                    max_trials: int) -> SearchSpec:
    """Check a search for a model (``builtin`` kind, or "" for a user model, whose names are
    its own) and the job's metrics; returns it with values normalised and defaults filled in."""
    where = "spec.search"
    if search.algorithm not in ALGORITHMS:
        raise InvalidArgument("choose the search algorithm: SEARCH_ALGORITHM_GRID or SEARCH_ALGORITHM_RANDOM",
                              field=f"{where}.algorithm")
    if not search.parameters:
        raise InvalidArgument("the search space is empty: name at least one hyperparameter to search",
                              field=f"{where}.parameters")
    schema = hp.SCHEMAS.get(builtin, {}) if builtin else None
    params: list[SearchParameter] = []
    seen: set[str] = set()
    for i, p in enumerate(search.parameters):
        at = f"{where}.parameters[{i}]"
        if not p.name or len(p.name) > 100:
            raise InvalidArgument("each searched hyperparameter needs a name of 1 to 100 characters",
                                  field=f"{at}.name")
        if p.name in seen:
            raise InvalidArgument(f"hyperparameter {p.name!r} is searched twice", field=f"{at}.name")
        seen.add(p.name)
        param = None
        if schema is not None:
            param = schema.get(p.name)
            if param is None:
                raise InvalidArgument(f"unknown hyperparameter {p.name!r} in the search space of {builtin}; "
                                      f"known: {', '.join(sorted(schema))}", field=f"{at}.name")
        if p.values is not None:
            params.append(_check_values(p, param, at))
        elif search.algorithm == "grid":
            raise InvalidArgument(f"a grid search needs explicit values for {p.name!r}, not a range",
                                  field=f"{at}.values")
        else:
            params.append(_check_range(p, param, at))

    if search.num_trials < 0:
        raise InvalidArgument("num_trials must not be negative", field=f"{where}.num_trials")
    if search.algorithm == "grid":
        size = math.prod(len(p.values or ()) for p in params)
        if search.num_trials and size > search.num_trials:
            raise InvalidArgument(f"the grid has {size} combinations, more than num_trials "
                                  f"({search.num_trials}); shrink the grid or raise num_trials",
                                  field=f"{where}.num_trials")
        if size > max_trials:
            raise InvalidArgument(f"the grid has {size} combinations, more than this service's limit of "
                                  f"{max_trials} trials; search fewer values", field=f"{where}.parameters")
    else:
        if search.num_trials == 0:
            raise InvalidArgument("a random search needs num_trials (the number of trials to sample)",
                                  field=f"{where}.num_trials")
        if search.num_trials > max_trials:
            raise InvalidArgument(f"num_trials {search.num_trials} is more than this service's limit of "
                                  f"{max_trials} trials", field=f"{where}.num_trials")
    if search.max_parallel_trials < 0:
        raise InvalidArgument("max_parallel_trials must not be negative (0 means: as many as the "
                              "executor has workers)", field=f"{where}.max_parallel_trials")
    metric = search.objective_metric or (metrics[0] if metrics else "")
    if metric not in metrics:
        raise InvalidArgument(f"the objective metric {metric!r} is not one of the job's metrics "
                              f"({', '.join(metrics)})", field=f"{where}.objective_metric")
    if search.direction not in ("", *DIRECTIONS):
        raise InvalidArgument("the direction must be maximize or minimize", field=f"{where}.direction")
    return replace(search, parameters=tuple(params), objective_metric=metric,
                   direction=search.direction or default_direction(metric))


def _check_values(p: SearchParameter, param: hp.Param | None, at: str) -> SearchParameter:
    values = tuple(p.values or ())
    if not values:
        raise InvalidArgument(f"the values of {p.name!r} are empty: the search would have no trials",
                              field=f"{at}.values")
    if param is None:  # user model: passed on as given
        return replace(p, values=tuple(hp._intify(v) for v in values))
    checked = tuple(hp._value(p.name, param, v, f"{at}.values[{j}]") for j, v in enumerate(values))
    return replace(p, values=checked)


def _check_range(p: SearchParameter, param: hp.Param | None, at: str) -> SearchParameter:
    field = f"{at}.range"
    for bound in (p.low, p.high):
        if isinstance(bound, bool) or not math.isfinite(bound):
            raise InvalidArgument(f"the range of {p.name!r} needs finite bounds", field=field)
    if p.low > p.high:
        raise InvalidArgument(f"the range of {p.name!r} has low {p.low:g} above high {p.high:g}", field=field)
    if p.log_scale and p.low <= 0:
        raise InvalidArgument(f"a log-scale range needs low > 0; {p.name!r} has low {p.low:g}", field=field)
    integer = p.integer
    if param is not None:
        if param.kind not in NUMERIC_KINDS:
            raise InvalidArgument(f"{p.name!r} is not a number: search it with explicit values", field=field)
        integer = integer or param.kind != "float"
        if not integer or math.ceil(p.low) <= math.floor(p.high):
            for bound in ((math.ceil(p.low), math.floor(p.high)) if integer else (p.low, p.high)):
                hp._value(p.name, param, bound, field)
    if integer and math.ceil(p.low) > math.floor(p.high):
        raise InvalidArgument(f"the range of {p.name!r} holds no integer", field=field)
    return replace(p, integer=integer)


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def expand_trials(search: SearchSpec, base: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """The full hyperparameters of each trial (``base`` overridden by the searched values)."""
    if search.algorithm == "grid":
        names = [p.name for p in search.parameters]
        combos = itertools.product(*(p.values or () for p in search.parameters))
        trials = [{**base, **dict(zip(names, combo))} for combo in combos]
        return trials[:search.num_trials] if search.num_trials else trials
    import numpy as np

    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(search.num_trials):
        values = {}
        for p in search.parameters:
            values[p.name] = _sample(p, rng)
        trials.append({**base, **values})
    return trials


def _sample(p: SearchParameter, rng) -> Any:
    if p.values is not None:
        return p.values[int(rng.integers(len(p.values)))]
    if p.log_scale:
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        value = float(rng.uniform(p.low, p.high))
    if p.integer:
        return min(max(_round(value), math.ceil(p.low)), math.floor(p.high))
    return min(max(value, p.low), p.high)


def best_trial(results: Mapping[int, Mapping[str, float]], metric: str, direction: str) -> int | None:
    """Index of the best trial among ``{index: {metric: validation value}}``; ties go to the first
    trial; None when no trial has the metric."""
    candidates = [(i, m[metric]) for i, m in sorted(results.items())
                  if metric in m and math.isfinite(m[metric])]
    if not candidates:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(candidates, key=lambda c: (sign * c[1], c[0]))[0]


__all__ = ["SearchParameter", "SearchSpec", "validate_search", "expand_trials", "best_trial",
           "default_direction"]
