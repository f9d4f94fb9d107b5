"""Every query in docs/metrics-query.md runs against the hour of data the page describes, and gives the
answers written under it (``# → …`` lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from yunzhou.observe.metrics import MetricStore, QueryEngine

DOC = Path(__file__).resolve().parents[4] / "docs" / "metrics-query.md"
T = 1_800_000_600.0
MIB = 1024 * 1024
_RESULT = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?(?:\{(?P<labels>[^}]*)\})? ?(?P<value>\S+)$")


def examples() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("# →"):
                out[-1][1].append(line[len("# →") :].strip())
            elif line.strip():
                out.append((line.strip(), []))
    return out


@pytest.fixture(scope="module")
def engine() -> QueryEngine:
    store = MetricStore.open(None)
    base = {"project": "shop", "env": "prod"}
    orders = {**base, "app": "orders", "release": "7"}
    cart = {**base, "app": "cart", "release": "3"}
    hist = {"0.1": 10, "0.25": 16, "0.5": 19, "1": 20, "+Inf": 21}  # cumulative per 10 s
    for k in range(361):
        t = T - 3600 + 10 * k
        rows = [
            ("yunzhou_router_requests_total", {**orders, "code": "2xx"}, 20.0 * k, t),
            ("yunzhou_router_requests_total", {**orders, "code": "5xx"}, 1.0 * k, t),
            ("yunzhou_router_requests_total", {**cart, "code": "2xx"}, 10.0 * k, t),
            ("yunzhou_app_replicas_desired", {**base, "app": "orders"}, 3.0, t),
            ("yunzhou_app_replicas_ready", {**base, "app": "orders"}, 1.0, t),
        ]
        rows += [
            ("yunzhou_router_request_duration_seconds_bucket", {**orders, "le": le}, float(c * k), t)
            for le, c in hist.items()
        ]
        for inst, mem, ready in (("orders-1", 200, 1.0), ("orders-2", 300, 0.0)):
            labels = {**orders, "instance": inst}
            rows.append(("yunzhou_instance_memory_bytes", labels, float(mem * MIB), t))
            rows.append(("yunzhou_instance_memory_limit_bytes", labels, float(512 * MIB), t))
            rows.append(("yunzhou_instance_ready", labels, ready, t))
        store.append_many(rows)
    return QueryEngine(store)


def parse_result(text: str) -> tuple[dict[str, str], float] | None:
    if text == "(empty)":
        return None
    m = _RESULT.match(text)
    assert m is not None, f"cannot read the documented result {text!r}"
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels") or ""))
    if m.group("name"):
        labels["__name__"] = m.group("name")
    return labels, float(m.group("value"))


@pytest.mark.parametrize(("query", "expected"), examples(), ids=[q for q, _ in examples()])
def test_documented_example(engine: QueryEngine, query: str, expected: list[str]) -> None:
    data = engine.instant(query, T)
    if data["resultType"] == "scalar":
        got: list[tuple[dict[str, str], float]] = [({}, float(data["result"][1]))]
    else:
        got = [(r["metric"], float(r["value"][1])) for r in data["result"]]
    want = [p for p in (parse_result(e) for e in expected) if p is not None]
    assert sorted(str(sorted(m.items())) for m, _ in got) == sorted(str(sorted(m.items())) for m, _ in want)
    for labels, value in want:
        (actual,) = [v for m, v in got if m == labels]
        assert actual == pytest.approx(value, rel=1e-9, abs=1e-6), query


def test_the_page_has_examples() -> None:
    assert len(examples()) >= 30
