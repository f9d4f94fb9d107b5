from __future__ import annotations

from typing import Any

from yunzhou.observe.metrics import QueryEngine


def vector(engine: QueryEngine, query: str, t: float) -> dict[tuple[tuple[str, str], ...], float]:
    """An instant query's vector as {sorted labels: value}."""
    data = engine.instant(query, t)
    assert data["resultType"] == "vector", data
    out = {}
    for item in data["result"]:
        assert item["value"][0] == t
        out[tuple(sorted(item["metric"].items()))] = float(item["value"][1])
    return out


def one(engine: QueryEngine, query: str, t: float) -> float:
    """The single value of an instant query (vector of one element, or scalar)."""
    data: dict[str, Any] = engine.instant(query, t)
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    assert len(data["result"]) == 1, data
    return float(data["result"][0]["value"][1])


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))
