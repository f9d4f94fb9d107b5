"""Canary analysis on the router's per-release counters, with an injected clock."""

from __future__ import annotations

from yunzhou.domain.canary import CanaryRun, ReleaseCounts, judge, p99_ms, query_value
from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.runtimes.local.canary import release_counts

METRICS = """\
# TYPE yunzhou_router_requests_total counter
yunzhou_router_requests_total{app="shop/dev/web",release="1",code="2xx"} 900
yunzhou_router_requests_total{app="shop/dev/web",release="2",code="2xx"} 80
yunzhou_router_requests_total{app="shop/dev/web",release="2",code="5xx"} 20
yunzhou_router_requests_total{app="shop/dev/other",release="2",code="5xx"} 999
yunzhou_router_request_duration_seconds_bucket{app="shop/dev/web",release="2",le="0.1"} 90
yunzhou_router_request_duration_seconds_bucket{app="shop/dev/web",release="2",le="0.5"} 99
yunzhou_router_request_duration_seconds_bucket{app="shop/dev/web",release="2",le="1"} 100
yunzhou_router_request_duration_seconds_bucket{app="shop/dev/web",release="2",le="+Inf"} 100
"""
ANALYSIS = {"weight": 20, "analysis": {"window": "10s", "maxErrorRate": 0.05, "minRequests": 20}}


def test_release_counts_read_one_app() -> None:
    counts = release_counts(METRICS, "shop/dev/web")
    assert counts[1].total == 900
    assert (counts[2].total, counts[2].errors) == (100, 20)
    assert p99_ms(ReleaseCounts(), counts[2]) == 500.0


def test_a_failing_canary_is_aborted_before_the_window_ends() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    counts = release_counts(METRICS, "shop/dev/web")[2]
    verdict, reason = judge(ANALYSIS, run, 3.0, counts)
    assert verdict == "abort"
    assert reason == "error rate 0.200 > 0.05 over 100 requests"


def test_a_healthy_canary_moves_on_after_the_window_only_with_enough_requests() -> None:
    healthy = ReleaseCounts(total=100, errors=1)
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    assert judge(ANALYSIS, run, 5.0, healthy) == ("continue", "")
    assert judge(ANALYSIS, run, 10.0, healthy) == ("next", "")
    assert judge(ANALYSIS, run, 10.0, ReleaseCounts(total=5))[0] == "continue"  # too few requests: waits
    run.baseline = ReleaseCounts(total=90, errors=0)  # counters are differenced against the step's start
    assert judge(ANALYSIS, run, 10.0, healthy)[0] == "continue"


def test_pauses_and_latency() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=100.0)
    assert judge({"weight": 10, "pause": "30s"}, run, 129.0, None) == ("continue", "")
    assert judge({"weight": 10, "pause": "30s"}, run, 130.0, None) == ("next", "")
    assert judge({"weight": 10}, run, 1e9, None) == ("continue", "")  # waits for a manual promote
    slow = {"weight": 10, "analysis": {"window": "1s", "maxP99Ms": 100, "minRequests": 1}}
    counts = release_counts(METRICS, "shop/dev/web")[2]
    verdict, reason = judge(slow, run, 101.0, counts)
    assert verdict == "abort"
    assert reason.startswith("p99 latency 500 ms > 100 ms")
    assert judge(slow, run, 101.0, None)[0] == "abort"  # no metrics after the window: not promoted blindly


QUERY_STEP = {"weight": 20, "analysis": {"window": "10s", "query": "sum(errors)", "maxValue": 0.05}}


def test_a_query_above_its_max_value_aborts_at_once() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    assert judge(QUERY_STEP, run, 1.0, None, lambda expr: 0.2) == (
        "abort",
        "query 'sum(errors)' = 0.2 > maxValue 0.05",
    )
    # at or below it, the step moves on when the window ends (no router counters needed)
    assert judge(QUERY_STEP, run, 1.0, None, lambda expr: 0.05) == ("continue", "")
    assert judge(QUERY_STEP, run, 10.0, None, lambda expr: 0.05) == ("next", "")


def test_no_data_for_the_query_waits_then_aborts() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    assert judge(QUERY_STEP, run, 9.0, None, lambda expr: None) == ("continue", "")
    assert judge(QUERY_STEP, run, 10.0, None, lambda expr: None) == (
        "abort",
        "no data for query 'sum(errors)'",
    )
    assert judge(QUERY_STEP, run, 10.0, None, None) == ("abort", "no data for query 'sum(errors)'")


def test_a_query_the_engine_refuses_aborts_with_its_message() -> None:
    def refuse(expr: str) -> float | None:
        raise UserError("bad query", problems=[FieldProblem("query", "unexpected end of input")])

    assert judge(QUERY_STEP, CanaryRun(stable=1, canary=2), 1.0, None, refuse) == (
        "abort",
        "query 'sum(errors)': unexpected end of input",
    )


def test_query_value_takes_the_highest_sample() -> None:
    vector = {
        "resultType": "vector",
        "result": [{"metric": {}, "value": [1, "0.5"]}, {"metric": {}, "value": [1, "2"]}],
    }
    assert query_value(vector) == 2.0
    assert query_value({"resultType": "vector", "result": []}) is None
    assert query_value({"resultType": "scalar", "result": [1, "NaN"]}) is None
    assert query_value({"resultType": "scalar", "result": [1, "3"]}) == 3.0
