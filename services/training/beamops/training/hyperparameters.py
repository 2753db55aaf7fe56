"""Hyperparameters of the built-in model kinds: names, types, ranges and defaults.

Values arrive from a protobuf Struct (or YAML), where every number is a float: integral values
are turned into ints where an int is expected. An unknown name or a value out of range is an
``InvalidArgument`` naming the hyperparameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from beamops.runtime.errors import InvalidArgument


@dataclass(frozen=True)
class Param:
    kind: str  # "int", "float", "choice", "int_list", "int_or_none"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


SCHEMAS: dict[str, dict[str, Param]] = {
    # scikit-learn HistGradientBoostingClassifier / Regressor
    "gradient_boosted_trees": {
        "max_iter": Param("int", 100, 1, 10_000, help="boosting rounds"),
        "learning_rate": Param("float", 0.1, 1e-6, 10.0),
        "max_leaf_nodes": Param("int", 31, 2, 65_536),
        "max_depth": Param("int_or_none", None, 1, 1_000),
        "min_samples_leaf": Param("int", 20, 1, 1_000_000),
        "l2_regularization": Param("float", 0.0, 0.0, 1e6),
        "max_bins": Param("int", 255, 2, 255),
        "max_features": Param("float", 1.0, 1e-6, 1.0),
    },
    # scikit-learn MLPClassifier / MLPRegressor behind a StandardScaler
    "mlp": {
        "hidden_layer_sizes": Param("int_list", [64, 32], 1, 100_000),
        "activation": Param("choice", "relu", choices=("relu", "tanh", "logistic", "identity")),
        "alpha": Param("float", 1e-4, 0.0, 1e3),
        "learning_rate_init": Param("float", 1e-3, 1e-7, 10.0),
        "max_iter": Param("int", 50, 1, 100_000, help="epochs"),
        "batch_size": Param("int", 200, 1, 10_000_000),
    },
    # xgboost.XGBClassifier / XGBRegressor (tree_method "hist")
    "xgboost": {
        "n_estimators": Param("int", 100, 1, 10_000, help="boosting rounds"),
        "learning_rate": Param("float", 0.1, 1e-6, 10.0),
        "max_depth": Param("int", 6, 1, 64),
        "min_child_weight": Param("float", 1.0, 0.0, 1e6),
        "subsample": Param("float", 1.0, 1e-6, 1.0),
        "colsample_bytree": Param("float", 1.0, 1e-6, 1.0),
        "reg_lambda": Param("float", 1.0, 0.0, 1e6),
        "reg_alpha": Param("float", 0.0, 0.0, 1e6),
        "gamma": Param("float", 0.0, 0.0, 1e6),
        "max_bin": Param("int", 256, 2, 65_536),
    },
    # lightgbm.LGBMClassifier / LGBMRegressor
    "lightgbm": {
        "n_estimators": Param("int", 100, 1, 10_000, help="boosting rounds"),
        "learning_rate": Param("float", 0.1, 1e-6, 10.0),
        "num_leaves": Param("int", 31, 2, 131_072),
        "max_depth": Param("int_or_none", None, 1, 1_000),
        "min_child_samples": Param("int", 20, 1, 1_000_000),
        "subsample": Param("float", 1.0, 1e-6, 1.0),
        "colsample_bytree": Param("float", 1.0, 1e-6, 1.0),
        "reg_lambda": Param("float", 0.0, 0.0, 1e6),
        "reg_alpha": Param("float", 0.0, 0.0, 1e6),
        "min_split_gain": Param("float", 0.0, 0.0, 1e6),
        "max_bin": Param("int", 255, 2, 65_536),
    },
}


def check(kind: str, values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Validated hyperparameters with every default filled in."""
    schema = SCHEMAS[kind]
    out: dict[str, Any] = {}
    for name, value in values.items():
        param = schema.get(name)
        if param is None:
            raise InvalidArgument(
                f"unknown hyperparameter {name!r} for {kind}; known: {', '.join(sorted(schema))}",
                field=f"{field}.{name}")
        out[name] = _value(name, param, value, f"{field}.{name}")
    for name, param in schema.items():
        out.setdefault(name, param.default)
    return out


def plain(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """User-model hyperparameters: passed on as they are (integral floats become ints)."""
    out = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name or len(name) > 100:
            raise InvalidArgument("hyperparameter names must be 1 to 100 characters", field=field)
        out[name] = _intify(value)
    return out


def _intify(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_intify(v) for v in value]
    if isinstance(value, dict):
        return {k: _intify(v) for k, v in value.items()}
    return value


def _value(name: str, param: Param, value: Any, field: str) -> Any:
    def bad(expected: str) -> InvalidArgument:
        return InvalidArgument(f"hyperparameter {name!r} must be {expected}; got {value!r}", field=field)

    def number(v: Any, integer: bool) -> float | int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            raise bad("an integer" if integer else "a number")
        if integer:
            if isinstance(v, float) and not v.is_integer():
                raise bad("an integer")
            v = int(v)
        if (param.low is not None and v < param.low) or (param.high is not None and v > param.high):
            raise bad(f"in [{param.low:g}, {param.high:g}]")
        return v

    if param.kind == "int":
        return number(value, True)
    if param.kind == "float":
        return float(number(value, False))
    if param.kind == "int_or_none":
        return None if value is None else number(value, True)
    if param.kind == "choice":
        if value not in param.choices:
            raise bad(f"one of {', '.join(param.choices)}")
        return value
    if param.kind == "int_list":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or len(value) > 64:
            raise bad("a list of 1 to 64 layer sizes")
        return [number(v, True) for v in value]
    raise AssertionError(param.kind)
