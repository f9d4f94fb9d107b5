"""Functions over instant vectors and scalars: histogram_quantile, math, clamps, vector/scalar, absent…"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from yunzhou.observe.metrics.promql import ast
from yunzhou.observe.metrics.promql.values import (
    Scalar,
    Series,
    Vector,
    dedupe,
    drop_name,
    eval_error,
    make_labels,
)
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, Labels, compile_anchored

Arg = Scalar | Vector | ast.StringLiteral


def _sgn(x: float) -> float:
    if x != x:
        return x
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


def _safe(fn: Callable[[float], float]) -> Callable[[float], float]:
    def wrapped(x: float) -> float:
        try:
            return fn(x)
        except ValueError:
            return -math.inf if x == 0 else math.nan
        except OverflowError:
            return math.inf

    return wrapped


def _ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


_MATH: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": _ceil,
    "floor": _floor,
    "exp": _safe(math.exp),
    "ln": _safe(math.log),
    "log2": _safe(math.log2),
    "log10": _safe(math.log10),
    "sqrt": _safe(math.sqrt),
    "sgn": _sgn,
}


def _map(v: Vector, fn: Callable[[float, int], float], keep_name: bool = False) -> Vector:
    out = [
        Series(
            s.labels if keep_name else drop_name(s.labels),
            [None if x is None else fn(x, k) for k, x in enumerate(s.values)],
        )
        for s in v.series
    ]
    return dedupe(out)


def call_instant(f: str, args: Sequence[Arg], steps: list[int], c: ast.Call) -> Scalar | Vector:
    n = len(steps)
    if f in _MATH:
        fn = _MATH[f]
        v = _vec(args[0])
        return _map(v, lambda x, _k: fn(x))
    if f == "timestamp":
        raise eval_error("timestamp() is not supported")
    if f in ("clamp_min", "clamp_max", "clamp"):
        v = _vec(args[0])
        a = _sc(args[1]).values
        if f == "clamp_min":
            return _map(v, lambda x, k: max(x, a[k]) if x == x else x)
        if f == "clamp_max":
            return _map(v, lambda x, k: min(x, a[k]) if x == x else x)
        b = _sc(args[2]).values
        out = _map(v, lambda x, k: max(a[k], min(b[k], x)) if x == x else x)
        # clamp with min > max returns an empty vector at that step
        for s in out.series:
            s.values = [None if a[k] > b[k] else x for k, x in enumerate(s.values)]
        out.series = [s for s in out.series if any(x is not None for x in s.values)]
        return out
    if f == "round":
        v = _vec(args[0])
        to = _sc(args[1]).values if len(args) > 1 else [1.0] * n

        def rnd(x: float, k: int) -> float:
            if not math.isfinite(x) or to[k] == 0:
                return x
            inv = 1 / to[k]
            return math.floor(x * inv + 0.5) / inv

        return _map(v, rnd)
    if f == "vector":
        return Vector([Series((), list(_sc(args[0]).values))])
    if f == "scalar":
        v = _vec(args[0])
        vals = []
        for k in range(n):
            present = [s.values[k] for s in v.series if s.values[k] is not None]
            vals.append(present[0] if len(present) == 1 and present[0] is not None else math.nan)
        return Scalar(vals)
    if f == "absent":
        v = _vec(args[0])
        present = [any(s.values[k] is not None for s in v.series) for k in range(n)]
        if all(present):
            return Vector([])
        inner = c.args[0]
        while isinstance(inner, ast.Paren):
            inner = inner.expr
        labels = absent_labels(inner) if isinstance(inner, ast.VectorSelector) else ()
        return Vector([Series(labels, [None if p else 1.0 for p in present])])
    if f in ("sort", "sort_desc"):
        v = _vec(args[0])
        # Only meaningful for instant queries; a range query keeps the series order.
        if n == 1:
            v.series.sort(key=_sort_key, reverse=f == "sort_desc")
        return v
    if f == "histogram_quantile":
        return _histogram_quantile(_sc(args[0]).values, _vec(args[1]), n)
    if f == "label_replace":
        return _label_replace(_vec(args[0]), *(_str(a) for a in args[1:5]))
    raise eval_error(f"function {f} is not supported")


def _sort_key(s: Series) -> float:
    x = s.values[0]
    return math.inf if x is None or x != x else x


def _vec(a: Arg) -> Vector:
    assert isinstance(a, Vector)
    return a


def _sc(a: Arg) -> Scalar:
    assert isinstance(a, Scalar)
    return a


def _str(a: Arg) -> str:
    assert isinstance(a, ast.StringLiteral)
    return a.value


def absent_labels(vs: ast.VectorSelector) -> Labels:
    """absent()'s labels: those of the selector's equality matchers (a label named twice is left out)."""
    d: dict[str, str] = {}
    dup: set[str] = set()
    for m in vs.matchers:
        if m.op == "=" and m.name != METRIC_NAME:
            if m.name in d:
                dup.add(m.name)
            d[m.name] = m.value
    return make_labels({k: v for k, v in d.items() if k not in dup})


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) pairs."""
    if q != q:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return math.nan
    # coalesce equal upper bounds, then force monotonic counts
    merged: list[list[float]] = []
    for le, cnt in buckets:
        if merged and merged[-1][0] == le:
            merged[-1][1] += cnt
        else:
            merged.append([le, cnt])
    for i in range(1, len(merged)):
        if merged[i][1] < merged[i - 1][1]:
            merged[i][1] = merged[i - 1][1]
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0 or observations != observations:
        return math.nan
    rank = q * observations
    b = len(merged) - 1
    for i in range(len(merged) - 1):
        if merged[i][1] >= rank:
            b = i
            break
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start = 0.0
    bucket_end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        bucket_start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def _histogram_quantile(q: list[float], v: Vector, n: int) -> Vector:
    groups: dict[Labels, list[tuple[float, Series]]] = {}
    for s in v.series:
        d = dict(s.labels)
        le_text = d.pop("le", None)
        if le_text is None:
            continue
        try:
            le = float(le_text)
        except ValueError:
            continue
        d.pop(METRIC_NAME, None)
        groups.setdefault(make_labels(d), []).append((le, s))
    out = []
    for labels, members in groups.items():
        vals: list[float | None] = []
        for k in range(n):
            buckets = [(le, s.values[k]) for le, s in members if s.values[k] is not None]
            if not buckets:
                vals.append(None)
                continue
            vals.append(bucket_quantile(q[k], buckets))  # type: ignore[arg-type]
        if any(x is not None for x in vals):
            out.append(Series(labels, vals))
    return Vector(out)


def _label_replace(v: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    rx = compile_anchored(regex)
    import re

    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", dst):
        raise eval_error(f"invalid destination label name in label_replace(): {dst!r}")
    template = re.sub(r"\$\{?(\w+)\}?", lambda m: "\\g<" + m.group(1) + ">", replacement)
    out = []
    for s in v.series:
        d = dict(s.labels)
        m = rx.match(d.get(src, ""))
        if m is not None:
            try:
                d[dst] = m.expand(template)
            except (IndexError, re.error):
                d[dst] = ""
        out.append(Series(make_labels(d), s.values))
    return dedupe(out)
