"""Canary analysis on the router's per-release counters, with an injected clock."""

from __future__ import annotations

from yunzhou.runtimes.local.canary import CanaryRun, ReleaseCounts, judge, p99_ms, release_counts

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
    assert judge(ANALYSIS, run, 10.0, ReleaseCounts(total=5)) == ("continue", "")
    run.baseline = ReleaseCounts(total=90, errors=0)  # counters are differenced against the step's start
    assert judge(ANALYSIS, run, 10.0, healthy) == ("continue", "")


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
