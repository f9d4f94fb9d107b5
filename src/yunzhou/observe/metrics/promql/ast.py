"""The syntax tree of the PromQL subset (see docs/metrics-query.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from yunzhou.observe.metrics.tsdb_index import Matcher


@dataclass(frozen=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True)
class StringLiteral:
    value: str


@dataclass(frozen=True)
class VectorSelector:
    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0


@dataclass(frozen=True)
class MatrixSelector:
    selector: VectorSelector
    range_ms: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Aggregate:
    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False


@dataclass(frozen=True)
class VectorMatching:
    on: bool = False  # True: match on ``labels``; False: ignoring ``labels``
    labels: tuple[str, ...] = ()
    card: str = "one-to-one"  # one-to-one | many-to-one | one-to-many | many-to-many
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching = field(default_factory=VectorMatching)


@dataclass(frozen=True)
class Unary:
    op: str
    expr: Expr


@dataclass(frozen=True)
class Paren:
    expr: Expr


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | Call
    | Aggregate
    | Binary
    | Unary
    | Paren
)

# Value types as PromQL names them.
SCALAR, VECTOR, MATRIX, STRING = "scalar", "instant vector", "range vector", "string"
