"""QueryEngine: PromQL instant and range queries over a MetricStore, answered like Prometheus' HTTP API."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.observe.metrics.promql import ast
from yunzhou.observe.metrics.promql.evaluator import LOOKBACK_MS, MAX_SAMPLES, Evaluator, SampleSource
from yunzhou.observe.metrics.promql.parser import parse, type_of
from yunzhou.observe.metrics.promql.values import Scalar, Vector
from yunzhou.observe.metrics.tsdb_index import Labels

MAX_POINTS = 11_000  # per series in a range query, as Prometheus


def format_value(v: float) -> str:
    """A float as Prometheus writes it (Go's strconv.FormatFloat(v, 'f', -1, 64))."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(v)
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
    if r.endswith(".0"):
        r = r[:-2]
    return r


def _ts(ms: int) -> float:
    return ms / 1000


def _error(field: str, message: str) -> UserError:
    return UserError(f"{field}: {message}", problems=[FieldProblem(field, message)])


class QueryEngine:
    """``engine.instant(expr, t)`` and ``engine.range(expr, start, end, step)``; times in unix seconds."""

    def __init__(
        self, store: SampleSource, *, lookback: float = LOOKBACK_MS / 1000, max_samples: int = MAX_SAMPLES
    ) -> None:
        self.store = store
        self.lookback_ms = round(lookback * 1000)
        self.max_samples = max_samples

    def instant(self, expr: str, t: float | None = None) -> dict[str, Any]:
        node = parse(expr)
        t_ms = round((time.time() if t is None else t) * 1000)
        ev = Evaluator(self.store, [t_ms], self.lookback_ms, self.max_samples)
        inner = node
        while isinstance(inner, ast.Paren):
            inner = inner.expr
        if isinstance(inner, ast.MatrixSelector):
            return {
                "resultType": "matrix",
                "result": [
                    {
                        "metric": dict(labels),
                        "values": [[_ts(a), format_value(b)] for a, b in zip(ts, vs, strict=True)],
                    }
                    for labels, ts, vs in sorted(ev.matrix(inner))
                ],
            }
        if isinstance(inner, ast.StringLiteral):
            return {"resultType": "string", "result": [_ts(t_ms), inner.value]}
        value = ev.eval(node)
        if isinstance(value, Scalar):
            return {"resultType": "scalar", "result": [_ts(t_ms), format_value(value.values[0])]}
        return {
            "resultType": "vector",
            "result": [
                {"metric": dict(s.labels), "value": [_ts(t_ms), format_value(s.values[0])]}
                for s in value.series
                if s.values[0] is not None
            ],
        }

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        if not (math.isfinite(start) and math.isfinite(end)):
            raise _error("start", "start and end must be finite times")
        if end < start:
            raise _error("end", "end timestamp must not be before start time")
        if not step > 0:
            raise _error(
                "step",
                "zero or negative query resolution step widths are not accepted; try a positive integer",
            )
        if (end - start) / step > MAX_POINTS:
            raise _error(
                "step",
                f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries; "
                "try decreasing the query resolution (?step=XX)",
            )
        node = parse(expr)
        t = type_of(node)
        if t not in (ast.SCALAR, ast.VECTOR):
            raise _error(
                "query", f'invalid expression type "{t}" for range query, must be scalar or instant vector'
            )
        start_ms, end_ms, step_ms = round(start * 1000), round(end * 1000), round(step * 1000)
        steps = list(range(start_ms, end_ms + 1, step_ms))
        ev = Evaluator(self.store, steps, self.lookback_ms, self.max_samples)
        value = ev.eval(node)
        series: list[tuple[Labels, list[float | None]]]
        if isinstance(value, Scalar):
            series = [((), list(value.values))]
        else:
            assert isinstance(value, Vector)
            series = [(s.labels, s.values) for s in value.series]
        result = []
        for labels, vals in sorted(series, key=lambda x: x[0]):
            points = [[_ts(steps[k]), format_value(v)] for k, v in enumerate(vals) if v is not None]
            if points:
                result.append({"metric": dict(labels), "values": points})
        return {"resultType": "matrix", "result": result}
