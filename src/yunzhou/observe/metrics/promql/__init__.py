"""A PromQL subset: lexer, parser, syntax tree and evaluator (see docs/metrics-query.md)."""

from yunzhou.observe.metrics.promql.parser import parse

__all__ = ["parse"]
