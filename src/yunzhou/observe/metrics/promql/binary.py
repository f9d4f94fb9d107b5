"""Binary operators: arithmetic, comparisons (filter or ``bool``), and/or/unless, vector matching."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

from yunzhou.observe.metrics.promql import ast
from yunzhou.observe.metrics.promql.values import (
    Scalar,
    Series,
    Vector,
    drop_name,
    eval_error,
    format_labels,
    make_labels,
)
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, Labels

ARITHMETIC = {"+", "-", "*", "/", "%", "^"}
_CMP: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except (ValueError, ZeroDivisionError):
        return math.nan


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf
    except (ValueError, ZeroDivisionError):
        if a == 0 and b < 0:
            return math.inf
        return math.nan


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "%": _mod,
    "^": _pow,
}


def apply_scalar(op: str, a: float, b: float, return_bool: bool) -> float:
    if op in _ARITH:
        return _ARITH[op](a, b)
    return 1.0 if _CMP[op](a, b) else 0.0


def binary(e: ast.Binary, lhs: Scalar | Vector, rhs: Scalar | Vector, n: int) -> Scalar | Vector:
    op = e.op
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return Scalar([apply_scalar(op, a, b, True) for a, b in zip(lhs.values, rhs.values, strict=True)])
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        return _vector_scalar(op, lhs, rhs, e.return_bool, swap=False)
    if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        return _vector_scalar(op, rhs, lhs, e.return_bool, swap=True)
    assert isinstance(lhs, Vector)
    assert isinstance(rhs, Vector)
    if op in ("and", "or", "unless"):
        return _set_op(op, lhs, rhs, e.matching, n)
    return _vector_vector(e, lhs, rhs, n)


def _vector_scalar(op: str, vec: Vector, sc: Scalar, return_bool: bool, swap: bool) -> Vector:
    out = []
    arith = _ARITH.get(op)
    cmp = _CMP.get(op)
    for s in vec.series:
        vals: list[float | None] = []
        for x, y in zip(s.values, sc.values, strict=True):
            if x is None:
                vals.append(None)
                continue
            a, b = (y, x) if swap else (x, y)
            if arith is not None:
                vals.append(arith(a, b))
            else:
                assert cmp is not None
                ok = cmp(a, b)
                if return_bool:
                    vals.append(1.0 if ok else 0.0)
                else:
                    vals.append(x if ok else None)
        if any(v is not None for v in vals):
            keep_name = arith is None and not return_bool
            out.append(Series(s.labels if keep_name else drop_name(s.labels), vals))
    return Vector(out)


def _signature(matching: ast.VectorMatching) -> Callable[[Labels], Labels]:
    names = set(matching.labels)
    if matching.on:
        return lambda labels: tuple(p for p in labels if p[0] in names)
    names.add(METRIC_NAME)
    return lambda labels: tuple(p for p in labels if p[0] not in names)


def _set_op(op: str, lhs: Vector, rhs: Vector, matching: ast.VectorMatching, n: int) -> Vector:
    sig = _signature(matching)
    lsig = [sig(s.labels) for s in lhs.series]
    rsig = [sig(s.labels) for s in rhs.series]
    out_l = [list(s.values) for s in lhs.series]
    out_r: list[list[float | None]] = [[None] * n for _ in rhs.series]
    for k in range(n):
        rpresent = {rsig[j] for j, s in enumerate(rhs.series) if s.values[k] is not None}
        if op == "and":
            for i in range(len(out_l)):
                if lsig[i] not in rpresent:
                    out_l[i][k] = None
        elif op == "unless":
            for i in range(len(out_l)):
                if lsig[i] in rpresent:
                    out_l[i][k] = None
        else:  # or
            lpresent = {lsig[i] for i, s in enumerate(lhs.series) if s.values[k] is not None}
            for j, s in enumerate(rhs.series):
                if s.values[k] is not None and rsig[j] not in lpresent:
                    out_r[j][k] = s.values[k]
    out = [
        Series(s.labels, v) for s, v in zip(lhs.series, out_l, strict=True) if any(x is not None for x in v)
    ]
    if op == "or":
        out += [
            Series(s.labels, v)
            for s, v in zip(rhs.series, out_r, strict=True)
            if any(x is not None for x in v)
        ]
    return Vector(out)


def _vector_vector(e: ast.Binary, lhs: Vector, rhs: Vector, n: int) -> Vector:
    m = e.matching
    op = e.op
    if m.card == "one-to-many":  # evaluate as many-to-one with the sides swapped
        many, one = rhs, lhs
    else:
        many, one = lhs, rhs
    sig = _signature(m)
    one_by_sig: dict[Labels, list[int]] = {}
    for j, s in enumerate(one.series):
        one_by_sig.setdefault(sig(s.labels), []).append(j)
    arith = _ARITH.get(op)
    cmp = _CMP.get(op)
    results: dict[Labels, list[float | None]] = {}
    label_cache: dict[tuple[int, int], Labels] = {}
    for k in range(n):
        matched_many: dict[Labels, int] = {}
        for i, ls in enumerate(many.series):
            x = ls.values[k]
            if x is None:
                continue
            s_i = sig(ls.labels)
            cands = [j for j in one_by_sig.get(s_i, ()) if one.series[j].values[k] is not None]
            if not cands:
                continue
            if len(cands) > 1:
                side = "left" if m.card == "one-to-many" else "right"
                raise _many_to_many(s_i, side)
            j = cands[0]
            if m.card == "one-to-one":
                if s_i in matched_many:
                    raise _many_to_many(s_i, "left")
                matched_many[s_i] = i
            y = one.series[j].values[k]
            assert y is not None
            a, b = (y, x) if m.card == "one-to-many" else (x, y)
            if arith is not None:
                value: float | None = arith(a, b)
            else:
                assert cmp is not None
                ok = cmp(a, b)
                value = (1.0 if ok else 0.0) if e.return_bool else (a if ok else None)
            if value is None:
                continue
            key = (i, j)
            labels = label_cache.get(key)
            if labels is None:
                labels = _result_labels(ls.labels, one.series[j].labels, op, m, e.return_bool)
                label_cache[key] = labels
            row = results.setdefault(labels, [None] * n)
            if row[k] is not None:
                raise eval_error(
                    f"vector cannot contain metrics with the same labelset {format_labels(labels)}"
                )
            row[k] = value
    return Vector([Series(labels, vals) for labels, vals in results.items()])


def _many_to_many(sig: Labels, side: str) -> Exception:
    return eval_error(
        f"found duplicate series for the match group {format_labels(sig)} on the {side} hand-side of the "
        "operation: many-to-many matching not allowed: matching labels must be unique on one side"
    )


def _result_labels(many: Labels, one: Labels, op: str, m: ast.VectorMatching, return_bool: bool) -> Labels:
    d = dict(many)
    if op in ARITHMETIC or return_bool:
        d.pop(METRIC_NAME, None)
    if m.card == "one-to-one":
        if m.on:
            d = {k: v for k, v in d.items() if k in m.labels}
        else:
            for name in m.labels:
                d.pop(name, None)
    if m.include:
        od = dict(one)
        for name in m.include:
            if od.get(name):
                d[name] = od[name]
            else:
                d.pop(name, None)
    return make_labels(d)
