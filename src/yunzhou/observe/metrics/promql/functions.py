"""The functions of the PromQL subset: argument and result types (the evaluator implements them)."""

from __future__ import annotations

from dataclasses import dataclass

from yunzhou.observe.metrics.promql.ast import MATRIX, SCALAR, STRING, VECTOR


@dataclass(frozen=True)
class Function:
    name: str
    arg_types: tuple[str, ...]
    return_type: str
    optional: int = 0  # how many trailing arguments may be left out
    variadic: bool = False


def _fns(*fs: Function) -> dict[str, Function]:
    return {f.name: f for f in fs}


_RANGE_TO_VECTOR = (
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "present_over_time",
    "absent_over_time",
)
_VECTOR_MATH = ("abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "timestamp")

FUNCTIONS: dict[str, Function] = _fns(
    *(Function(n, (MATRIX,), VECTOR) for n in _RANGE_TO_VECTOR),
    *(Function(n, (VECTOR,), VECTOR) for n in _VECTOR_MATH),
    Function("quantile_over_time", (SCALAR, MATRIX), VECTOR),
    Function("predict_linear", (MATRIX, SCALAR), VECTOR),
    Function("histogram_quantile", (SCALAR, VECTOR), VECTOR),
    Function("clamp_min", (VECTOR, SCALAR), VECTOR),
    Function("clamp_max", (VECTOR, SCALAR), VECTOR),
    Function("clamp", (VECTOR, SCALAR, SCALAR), VECTOR),
    Function("round", (VECTOR, SCALAR), VECTOR, optional=1),
    Function("time", (), SCALAR),
    Function("vector", (SCALAR,), VECTOR),
    Function("scalar", (VECTOR,), SCALAR),
    Function("absent", (VECTOR,), VECTOR),
    Function("sort", (VECTOR,), VECTOR),
    Function("sort_desc", (VECTOR,), VECTOR),
    Function("label_replace", (VECTOR, STRING, STRING, STRING, STRING), VECTOR),
)

# Functions whose result keeps the input's metric name (all others drop it).
KEEPS_NAME = {"last_over_time", "sort", "sort_desc", "label_replace"}
