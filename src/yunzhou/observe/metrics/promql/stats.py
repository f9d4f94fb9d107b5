"""Reductions over a list of values with Prometheus' NaN/Inf behaviour, shared by *_over_time and
the aggregation operators."""

from __future__ import annotations

import math


def mean(xs: list[float]) -> float:
    if all(math.isfinite(x) for x in xs):
        return math.fsum(xs) / len(xs)
    m = 0.0  # incremental mean, as Prometheus, so that infinities do not turn into NaN
    for i, x in enumerate(xs, 1):
        if math.isinf(m) and math.isinf(x) and (m > 0) == (x > 0):
            continue
        m += x / i - m / i
    return m


def total(xs: list[float]) -> float:
    return math.fsum(xs) if all(math.isfinite(x) for x in xs) else sum(xs)


def variance(xs: list[float]) -> float:
    count, m, aux = 0.0, 0.0, 0.0
    for x in xs:
        count += 1
        delta = x - m
        m += delta / count
        aux += delta * (x - m)
    return aux / count


def minimum(xs: list[float]) -> float:
    """NaN only when every value is NaN."""
    m = xs[0]
    for x in xs[1:]:
        if m > x or m != m:
            m = x
    return m


def maximum(xs: list[float]) -> float:
    m = xs[0]
    for x in xs[1:]:
        if m < x or m != m:
            m = x
    return m


def quantile(q: float, xs: list[float]) -> float:
    """Prometheus' quantile: linear interpolation between closest ranks."""
    if not xs or q != q:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    s = sorted(xs)
    rank = q * (len(s) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(s) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return s[lower] * (1 - weight) + s[upper] * weight
