"""Values flowing through the evaluator, and helpers shared by its parts."""

from __future__ import annotations

from dataclasses import dataclass

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, Labels


@dataclass
class Scalar:
    values: list[float]  # one per step


@dataclass
class Series:
    labels: Labels
    values: list[float | None]  # one per step; None = no sample


@dataclass
class Vector:
    series: list[Series]


def eval_error(message: str) -> UserError:
    return UserError(f"query: {message}", problems=[FieldProblem("query", message)])


def drop_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != METRIC_NAME)


def make_labels(d: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in d.items() if v != ""))


def format_labels(labels: Labels) -> str:
    d = dict(labels)
    name = d.pop(METRIC_NAME, "")
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}"


def dedupe(series: list[Series]) -> Vector:
    """Merge series that ended up with equal labels; two values at one step is an error (as in Prometheus)."""
    by_labels: dict[Labels, Series] = {}
    out: list[Series] = []
    for s in series:
        have = by_labels.get(s.labels)
        if have is None:
            by_labels[s.labels] = s
            out.append(s)
            continue
        merged = list(have.values)
        for k, v in enumerate(s.values):
            if v is None:
                continue
            if merged[k] is not None:
                raise eval_error(
                    f"vector cannot contain metrics with the same labelset {format_labels(s.labels)}"
                )
            merged[k] = v
        have.values = merged
    return Vector(out)
