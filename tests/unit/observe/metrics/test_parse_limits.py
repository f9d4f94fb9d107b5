"""Deeply nested queries are refused naming `query` and the limit (a 3000-level query used to escape as a
RecursionError, a 500 with a 3000-line traceback); queries up to the limit still evaluate."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics import QueryEngine
from yunzhou.observe.metrics.promql.parser import MAX_DEPTH, MAX_QUERY_LENGTH, parse

DEEP = 3000


@pytest.mark.parametrize(
    "query",
    [
        "(" * DEEP + "1" + ")" * DEEP,
        "-" * DEEP + "1",
        "1" + "^1" * DEEP,
        "1" + " + 1" * DEEP,  # left-associative: a deep tree built in a loop, not by recursion
        "abs(" * DEEP + "up" + ")" * DEEP,
        "sum(" * 1000 + "up" + ")" * 1000,
    ],
    ids=["parens", "unary", "power", "sum-chain", "calls", "aggregations"],
)
def test_nesting_past_the_limit_is_a_user_error_on_query(query: str) -> None:
    with pytest.raises(UserError) as refused:
        parse(query[:MAX_QUERY_LENGTH])
    assert [p.path for p in refused.value.problems] == ["query"]
    assert f"{MAX_DEPTH} levels" in refused.value.message


def test_queries_within_the_limit_evaluate(engine: QueryEngine) -> None:
    nested = "(" * 30 + "1" + ")" * 30 + " + 1" * 20
    assert engine.instant(nested, 100.0)["result"][1] == "21"


def test_a_longer_query_is_refused_naming_the_limit() -> None:
    with pytest.raises(UserError) as refused:
        parse("1" + " + 1" * MAX_QUERY_LENGTH)
    assert str(MAX_QUERY_LENGTH) in refused.value.message
