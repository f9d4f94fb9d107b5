"""Aggregation operators: sum avg min max count group stddev stdvar quantile topk bottomk."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from yunzhou.observe.metrics.promql import ast, stats
from yunzhou.observe.metrics.promql.values import Scalar, Series, Vector, eval_error
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, Labels


def _group_key(e: ast.Aggregate) -> Callable[[Labels], Labels]:
    names = set(e.grouping)
    if e.without:
        names.add(METRIC_NAME)
        return lambda labels: tuple(p for p in labels if p[0] not in names)
    return lambda labels: tuple(p for p in labels if p[0] in names)


def aggregate(e: ast.Aggregate, inner: Vector, param: Scalar | None, n: int) -> Vector:
    key_of = _group_key(e)
    groups: dict[Labels, list[int]] = {}
    for i, s in enumerate(inner.series):
        groups.setdefault(key_of(s.labels), []).append(i)
    if e.op in ("topk", "bottomk"):
        assert param is not None
        return _topk(e.op == "topk", inner, groups, param, n)
    out: list[Series] = []
    for key, members in groups.items():
        vals: list[float | None] = []
        if len(members) == 1 and e.op in _IDENTITY_ON_ONE:
            out.append(Series(key, list(inner.series[members[0]].values)))
            continue
        for k in range(n):
            xs = [x for x in (inner.series[i].values[k] for i in members) if x is not None]
            if not xs:
                vals.append(None)
                continue
            vals.append(_reduce(e.op, xs, param.values[k] if param is not None else 0.0))
        out.append(Series(key, vals))
    return Vector(out)


_IDENTITY_ON_ONE = {"sum", "avg", "min", "max"}


def _reduce(op: str, xs: list[float], p: float) -> float:
    if op == "count":
        return float(len(xs))
    if op == "group":
        return 1.0
    if op == "stddev":
        return math.sqrt(stats.variance(xs))
    if op == "quantile":
        return stats.quantile(p, xs)
    reduce = _REDUCERS.get(op)
    if reduce is None:
        raise eval_error(f"unsupported aggregation {op}")
    return reduce(xs)


_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "sum": stats.total,
    "avg": stats.mean,
    "min": stats.minimum,
    "max": stats.maximum,
    "stdvar": stats.variance,
}


def _topk(top: bool, inner: Vector, groups: dict[Labels, list[int]], param: Scalar, n: int) -> Vector:
    vals: list[list[float | None]] = [[None] * n for _ in inner.series]
    for k in range(n):
        p = param.values[k]
        if p != p:
            raise eval_error("the parameter of topk/bottomk must be a number, got NaN")
        kk = int(p)
        if kk < 1:
            continue
        for members in groups.values():
            present = [
                (inner.series[i].values[k], i) for i in members if inner.series[i].values[k] is not None
            ]

            def order(item: tuple[float | None, int]) -> float:
                x = item[0]
                assert x is not None
                if x != x:  # NaN sorts last either way
                    return -math.inf if top else math.inf
                return x

            chosen = (
                heapq.nlargest(kk, present, key=order) if top else heapq.nsmallest(kk, present, key=order)
            )
            for x, i in chosen:
                vals[i][k] = x
    return Vector(
        [
            Series(s.labels, v)
            for s, v in zip(inner.series, vals, strict=True)
            if any(x is not None for x in v)
        ]
    )
