"""Function signatures, and the kernels of the range-vector functions (one window of samples → value).

The rate family follows Prometheus 2.x ``extrapolatedRate``: counter resets add the value before the
drop, and the result is extrapolated towards the window edges (not beyond half an average sample
interval, nor below zero for counters).
"""

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


def extrapolated_rate(
    first_t: int,
    first_v: float,
    last_t: int,
    last_v: float,
    n: int,
    resets: float,
    range_start: int,
    range_end: int,
    range_ms: int,
    is_counter: bool,
    is_rate: bool,
) -> float | None:
    """Prometheus' extrapolatedRate over a window of ``n`` ≥ 2 samples (``resets``: the sum of the
    values just before each counter reset inside the window)."""
    if n < 2:
        return None
    result = last_v - first_v
    if is_counter:
        result += resets
    duration_to_start = (first_t - range_start) / 1000
    duration_to_end = (range_end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    avg_between = sampled / (n - 1)
    if is_counter and result > 0 and first_v >= 0:
        duration_to_zero = sampled * (first_v / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = avg_between * 1.1
    extrapolate_to = sampled
    extrapolate_to += duration_to_start if duration_to_start < threshold else avg_between / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else avg_between / 2
    result = result * (extrapolate_to / sampled)
    if is_rate:
        result /= range_ms / 1000
    return result
