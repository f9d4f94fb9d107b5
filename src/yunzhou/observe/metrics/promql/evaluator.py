"""Evaluates a parsed expression at every step of a query at once.

Values: a scalar is one float per step; an instant vector is a list of series, each with its labels and
one ``float | None`` per step (None: no sample at that step). Range vectors exist only as function
arguments (and as the result of an instant query for ``foo[5m]``).
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Protocol

from yunzhou.observe.metrics.promql import ast, stats
from yunzhou.observe.metrics.promql.aggregate import aggregate
from yunzhou.observe.metrics.promql.binary import binary
from yunzhou.observe.metrics.promql.functions import KEEPS_NAME
from yunzhou.observe.metrics.promql.values import (
    Scalar,
    Series,
    Vector,
    dedupe,
    drop_name,
    eval_error,
)
from yunzhou.observe.metrics.store import SeriesSamples
from yunzhou.observe.metrics.tsdb_index import Labels, Matcher
from yunzhou.observe.metrics.tsdb_stale import has_stale, is_stale

LOOKBACK_MS = 300_000
MAX_SAMPLES = 50_000_000  # loaded by one query, as Prometheus' --query.max-samples


class SampleSource(Protocol):
    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> Iterable[SeriesSamples]: ...


@dataclass
class _RangeSeries:
    """One series prepared for window functions: stale markers dropped, prefix sums built lazily."""

    labels: Labels
    ts: list[int]
    vs: list[float]
    agg: tuple[list[int], list[float], list[float], list[float], list[float]] | None = None
    _resets: list[float] | None = None

    def has_resets(self) -> bool:
        vs = self.vs
        return any(map(operator.lt, vs[1:], vs[:-1]))

    def resets_prefix(self) -> list[float]:
        """r[i] = the sum of vs[j-1] over the counter resets j ≤ i."""
        if self._resets is None:
            vs = self.vs
            drops = [a if b < a else 0.0 for a, b in pairwise(vs)]
            self._resets = [0.0, *accumulate(drops)] if vs else []
        return self._resets


class Evaluator:
    def __init__(
        self,
        source: SampleSource,
        steps: list[int],
        lookback_ms: int = LOOKBACK_MS,
        max_samples: int = MAX_SAMPLES,
    ) -> None:
        self.source = source
        self.max_samples = max_samples
        self.steps = steps
        self.n = len(steps)
        self.lookback = lookback_ms
        self.samples_loaded = 0

    # ---- dispatch ----------------------------------------------------------------------------------
    def eval(self, e: ast.Expr) -> Scalar | Vector:
        if isinstance(e, ast.NumberLiteral):
            return Scalar([e.value] * self.n)
        if isinstance(e, ast.Paren):
            return self.eval(e.expr)
        if isinstance(e, ast.VectorSelector):
            return self.vector_selector(e)
        if isinstance(e, ast.Unary):
            v = self.eval(e.expr)
            if isinstance(v, Scalar):
                return Scalar([-x for x in v.values])
            return Vector(
                [Series(drop_name(s.labels), [None if x is None else -x for x in s.values]) for s in v.series]
            )
        if isinstance(e, ast.Binary):
            return binary(e, self.eval(e.lhs), self.eval(e.rhs), self.n)
        if isinstance(e, ast.Aggregate):
            param = self.eval(e.param) if e.param is not None else None
            inner = self.eval(e.expr)
            assert isinstance(inner, Vector)
            assert param is None or isinstance(param, Scalar)
            return aggregate(e, inner, param, self.n)
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.MatrixSelector):
            raise eval_error("a range vector cannot be evaluated here; wrap it in a function such as rate()")
        if isinstance(e, ast.StringLiteral):
            raise eval_error("a string cannot be evaluated here")
        raise eval_error(f"unsupported expression {type(e).__name__}")

    # ---- selectors ---------------------------------------------------------------------------------
    def _select(self, vs: ast.VectorSelector, before: int) -> Iterator[SeriesSamples]:
        mint = self.steps[0] - vs.offset_ms - before
        maxt = self.steps[-1] - vs.offset_ms
        for found in self.source.select(vs.matchers, mint, maxt):
            self.samples_loaded += len(found.ts)
            if self.samples_loaded > self.max_samples:
                raise eval_error(
                    "query processing would load too many samples into memory "
                    f"(more than {self.max_samples:,}); narrow the selector or the time range"
                )
            yield found

    def vector_selector(self, vs: ast.VectorSelector) -> Vector:
        out = []
        lookback = self.lookback
        for s in self._select(vs, lookback):
            ts, values = s.ts, s.vs
            if not ts:
                continue
            vals: list[float | None] = []
            hi = 0
            n = len(ts)
            for step in self.steps:
                ref = step - vs.offset_ms
                while hi < n and ts[hi] <= ref:
                    hi += 1
                i = hi - 1
                if i >= 0 and ts[i] >= ref - lookback:
                    x = values[i]
                    vals.append(x if x == x or not is_stale(x) else None)
                else:
                    vals.append(None)
            if any(v is not None for v in vals):
                out.append(Series(s.labels, vals))
        return Vector(out)

    def range_series(self, ms: ast.MatrixSelector) -> Iterator[_RangeSeries]:
        for s in self._select(ms.selector, ms.range_ms):
            if has_stale(s.vs):
                keep = [i for i, v in enumerate(s.vs) if not is_stale(v)]
                ts, vs = [s.ts[i] for i in keep], [s.vs[i] for i in keep]
            else:
                ts, vs = s.ts.tolist(), s.vs.tolist()
            rs = _RangeSeries(s.labels, ts, vs)
            if s.rollups is not None and len(s.rollups):
                rs.agg = _over_time_points(s, ts, vs)
            yield rs

    def matrix(self, ms: ast.MatrixSelector) -> list[tuple[Labels, list[int], list[float]]]:
        """The raw windows of an instant query's range-vector result (one step only)."""
        step = self.steps[-1]
        end = step - ms.selector.offset_ms
        start = end - ms.range_ms
        out = []
        for rs in self.range_series(ms):
            lo, hi = bisect_left(rs.ts, start), bisect_right(rs.ts, end)
            if hi > lo:
                out.append((rs.labels, rs.ts[lo:hi], rs.vs[lo:hi]))
        return out

    # ---- functions ---------------------------------------------------------------------------------
    def call(self, c: ast.Call) -> Scalar | Vector:
        f = c.func
        if f == "time":
            return Scalar([t / 1000 for t in self.steps])
        matrix_args = [a for a in map(_unparen, c.args) if isinstance(a, ast.MatrixSelector)]
        if matrix_args:
            ms = matrix_args[0]
            if f == "quantile_over_time":
                q = self.eval(c.args[0])
                assert isinstance(q, Scalar)
                return self.range_function(f, ms, q.values)
            if f == "predict_linear":
                d = self.eval(c.args[1])
                assert isinstance(d, Scalar)
                # the kernel fits the line at the window's end; evaluation time is offset later
                shift = ms.selector.offset_ms / 1000
                return self.range_function(f, ms, [x + shift for x in d.values])
            return self.range_function(f, ms, None)
        args = [self.eval(a) if not isinstance(a, ast.StringLiteral) else a for a in c.args]
        from yunzhou.observe.metrics.promql.instant_functions import call_instant

        return call_instant(f, args, self.steps, c)

    def range_function(self, f: str, ms: ast.MatrixSelector, param: list[float] | None) -> Vector:
        kernel = _KERNELS.get(f)
        out: list[Series] = []
        rng = ms.range_ms
        off = ms.selector.offset_ms
        all_series = self.range_series(ms)
        if f == "absent_over_time":
            return self._absent_over_time(ms, all_series)
        fast = _FAST_RATES.get(f)
        for rs in all_series:
            ts = rs.ts
            vals: list[float | None] = []
            if fast is not None:
                vals = _rate_values(rs, self.steps, off, rng, *fast)
                if any(v is not None for v in vals):
                    out.append(Series(drop_name(rs.labels), vals))
                continue
            for k, step in enumerate(self.steps):
                end = step - off
                start = end - rng
                lo, hi = bisect_left(ts, start), bisect_right(ts, end)
                if rs.agg is not None and f in _ROLLUP_AWARE:
                    vals.append(_agg_over_time(f, rs.agg, start, end))
                    continue
                if hi <= lo:
                    vals.append(None)
                    continue
                assert kernel is not None
                vals.append(kernel(rs, lo, hi, start, end, rng, param[k] if param else 0.0))
            if any(v is not None for v in vals):
                out.append(Series(rs.labels if f in KEEPS_NAME else drop_name(rs.labels), vals))
        return dedupe(out)

    def _absent_over_time(self, ms: ast.MatrixSelector, all_series: Iterator[_RangeSeries]) -> Vector:
        from yunzhou.observe.metrics.promql.instant_functions import absent_labels

        present = [False] * self.n
        for rs in all_series:
            for k, step in enumerate(self.steps):
                end = step - ms.selector.offset_ms
                start = end - ms.range_ms
                present[k] = present[k] or bisect_right(rs.ts, end) > bisect_left(rs.ts, start)
        vals: list[float | None] = [None if p else 1.0 for p in present]
        if all(v is None for v in vals):
            return Vector([])
        return Vector([Series(absent_labels(ms.selector), vals)])


_FAST_RATES = {"rate": (True, True), "increase": (True, False), "delta": (False, False)}


def _rate_values(
    rs: _RangeSeries, steps: list[int], off: int, rng: int, is_counter: bool, is_rate: bool
) -> list[float | None]:
    """rate/increase/delta at every step, as Prometheus 2.x ``extrapolatedRate``: counter resets add
    the value before the drop, and the result is extrapolated towards the window's edges (not beyond
    half an average sample interval, nor below zero for counters). Windows are bisected from the
    previous step's (steps only move forward)."""
    ts, vs = rs.ts, rs.vs
    resets = rs.resets_prefix() if is_counter and rs.has_resets() else None
    lo = hi = 0
    out: list[float | None] = []
    range_s = rng / 1000
    for step in steps:
        end = step - off
        start = end - rng
        lo = bisect_left(ts, start, lo)
        hi = bisect_right(ts, end, max(lo, hi))
        count = hi - lo
        if count < 2:
            out.append(None)
            continue
        first_t, last_t = ts[lo], ts[hi - 1]
        first_v = vs[lo]
        result = vs[hi - 1] - first_v
        if resets is not None:
            result += resets[hi - 1] - resets[lo]
        to_start = (first_t - start) / 1000
        to_end = (end - last_t) / 1000
        sampled = (last_t - first_t) / 1000
        avg = sampled / (count - 1)
        if is_counter and result > 0 and first_v >= 0:
            to_zero = sampled * (first_v / result)
            if to_zero < to_start:
                to_start = to_zero
        threshold = avg * 1.1
        interval = sampled + (to_start if to_start < threshold else avg / 2)
        interval += to_end if to_end < threshold else avg / 2
        result *= interval / sampled
        out.append(result / range_s if is_rate else result)
    return out


def _unparen(e: ast.Expr) -> ast.Expr:
    while isinstance(e, ast.Paren):
        e = e.expr
    return e


# ---- window kernels: (series, lo, hi, range_start, range_end, range_ms, param) → value or None ----
Kernel = Callable[[_RangeSeries, int, int, int, int, int, float], "float | None"]


def _instant_rate(is_rate: bool) -> Kernel:
    def kernel(rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, _p: float) -> float | None:
        if hi - lo < 2:
            return None
        last, prev = rs.vs[hi - 1], rs.vs[hi - 2]
        result = last - prev
        if is_rate and last < prev:
            result = last
        dt = rs.ts[hi - 1] - rs.ts[hi - 2]
        if is_rate:
            if dt == 0:
                return None
            result /= dt / 1000
        return result

    return kernel


def linear_regression(ts: list[int], vs: list[float], intercept_t: int) -> tuple[float, float]:
    """Least-squares (slope per second, value at ``intercept_t``), as Prometheus' linearRegression."""
    init = vs[0]
    if all(v == init for v in vs):
        return (math.nan, math.nan) if math.isinf(init) else (0.0, init)
    n = len(ts)
    xs = [(t - intercept_t) / 1000 for t in ts]
    sum_x, sum_y = math.fsum(xs), math.fsum(vs)
    sum_xy = math.fsum(x * y for x, y in zip(xs, vs, strict=True))
    sum_x2 = math.fsum(x * x for x in xs)
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x
    return slope, sum_y / n - slope * sum_x / n


def _deriv(rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, _p: float) -> float | None:
    if hi - lo < 2:
        return None
    return linear_regression(rs.ts[lo:hi], rs.vs[lo:hi], rs.ts[lo])[0]


def _predict_linear(
    rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, d: float
) -> float | None:
    if hi - lo < 2:
        return None
    slope, intercept = linear_regression(rs.ts[lo:hi], rs.vs[lo:hi], end)
    return slope * d + intercept


def _changes(resets: bool) -> Kernel:
    def kernel(rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, _p: float) -> float | None:
        vs = rs.vs
        c = 0
        for i in range(lo + 1, hi):
            a, b = vs[i - 1], vs[i]
            if resets:
                c += b < a
            elif a != b and not (a != a and b != b):
                c += 1
        return float(c)

    return kernel


def _simple(fn: Callable[[list[float]], float]) -> Kernel:
    def kernel(rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, _p: float) -> float | None:
        return fn(rs.vs[lo:hi])

    return kernel


def _quantile_kernel(
    rs: _RangeSeries, lo: int, hi: int, start: int, end: int, rng: int, p: float
) -> float | None:
    return stats.quantile(p, rs.vs[lo:hi])


_KERNELS: dict[str, Kernel] = {
    "irate": _instant_rate(True),
    "idelta": _instant_rate(False),
    "deriv": _deriv,
    "predict_linear": _predict_linear,
    "changes": _changes(False),
    "resets": _changes(True),
    "avg_over_time": _simple(stats.mean),
    "min_over_time": _simple(stats.minimum),
    "max_over_time": _simple(stats.maximum),
    "sum_over_time": _simple(stats.total),
    "count_over_time": _simple(lambda xs: float(len(xs))),
    "last_over_time": _simple(lambda xs: xs[-1]),
    "present_over_time": _simple(lambda xs: 1.0),
    "stdvar_over_time": _simple(stats.variance),
    "stddev_over_time": _simple(lambda xs: math.sqrt(stats.variance(xs))),
    "quantile_over_time": _quantile_kernel,
}


def _over_time_points(
    s: SeriesSamples, ts: list[int], vs: list[float]
) -> tuple[list[int], list[float], list[float], list[float], list[float]]:
    """(t, min, max, sum, count) points: one per rollup bucket, then one per raw sample after them."""
    r = s.rollups
    assert r is not None
    pts_t = list(r.t)
    mn, mx, sm, ct = list(r.min), list(r.max), list(r.sum), list(r.count)
    i = bisect_left(ts, s.raw_from)
    pts_t.extend(ts[i:])
    mn.extend(vs[i:])
    mx.extend(vs[i:])
    sm.extend(vs[i:])
    ct.extend([1.0] * (len(ts) - i))
    return pts_t, mn, mx, sm, ct


def _agg_over_time(
    f: str, agg: tuple[list[int], list[float], list[float], list[float], list[float]], start: int, end: int
) -> float | None:
    t, mn, mx, sm, ct = agg
    lo, hi = bisect_left(t, start), bisect_right(t, end)
    if hi <= lo:
        return None
    if f == "min_over_time":
        return stats.minimum(mn[lo:hi])
    if f == "max_over_time":
        return stats.maximum(mx[lo:hi])
    if f == "sum_over_time":
        return math.fsum(sm[lo:hi])
    if f == "count_over_time":
        return math.fsum(ct[lo:hi])
    if f == "avg_over_time":
        return math.fsum(sm[lo:hi]) / math.fsum(ct[lo:hi])
    return 1.0  # present_over_time


# These use a rollup bucket's min/max/sum/count; the others see each bucket as its last sample.
_ROLLUP_AWARE = {
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "avg_over_time",
    "present_over_time",
}
