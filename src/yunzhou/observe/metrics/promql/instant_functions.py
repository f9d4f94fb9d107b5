"""Functions over instant vectors and scalars: histogram_quantile, math, clamps, vector/scalar, absent…"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate

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
    buckets = sorted(buckets, key=lambda b: b[0])
    return sorted_bucket_quantile(q, [b[0] for b in buckets], [b[1] for b in buckets])


def sorted_bucket_quantile(q: float, les: list[float], counts: list[float]) -> float:
    """bucketQuantile with upper bounds already in ascending order (duplicates allowed)."""
    if q != q:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not les or les[-1] != math.inf:
        return math.nan
    # coalesce equal upper bounds, then force monotonic counts (a scrape can race an observation)
    bounds: list[float] = []
    cum: list[float] = []
    for le, c in zip(les, counts, strict=True):
        if bounds and bounds[-1] == le:
            cum[-1] += c
        else:
            bounds.append(le)
            cum.append(c)
    cum = list(accumulate(cum, max))
    if len(bounds) < 2:
        return math.nan
    observations = cum[-1]
    if observations == 0 or observations != observations:
        return math.nan
    rank = q * observations
    b = bisect_left(cum, rank, 0, len(cum) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    bucket_start = 0.0
    bucket_end = bounds[b]
    count = cum[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= cum[b - 1]
        rank -= cum[b - 1]
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
        members.sort(key=lambda m: m[0])
        les = [le for le, _ in members]
        cols = [s.values for _, s in members]
        vals: list[float | None] = []
        for k in range(n):
            counts = [c[k] for c in cols]
            if None in counts:
                present = [(le, c) for le, c in zip(les, counts, strict=True) if c is not None]
                if not present:
                    vals.append(None)
                    continue
                vals.append(sorted_bucket_quantile(q[k], [p[0] for p in present], [p[1] for p in present]))
            else:
                vals.append(sorted_bucket_quantile(q[k], les, counts))  # type: ignore[arg-type]
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
