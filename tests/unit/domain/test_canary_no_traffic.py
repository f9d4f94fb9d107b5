"""A canary step without traffic (docs/traffic.md "No traffic"), judged with an injected clock: it waits
with a visible reason while the stable release serves, fails at the progress deadline with that reason,
and promotes instead when ``allowNoTraffic`` is set; traffic with errors still aborts as before."""

from __future__ import annotations

import pytest

from yunzhou.domain.canary import NO_TRAFFIC, CanaryRun, ReleaseCounts, analysis_options, judge
from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import DEFAULT_PROGRESS_DEADLINE_S, parse_settings

STEP = {"weight": 10, "analysis": {"window": "1m", "maxErrorRate": 0.01, "minRequests": 20}}
NONE = ReleaseCounts()  # the router answered and has no request for the canary release


def test_no_traffic_waits_with_the_reason_instead_of_aborting() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    assert judge(STEP, run, 30.0, NONE) == ("continue", "")  # the window is still open
    verdict, reason = judge(STEP, run, 65.0, NONE)  # where it used to abort as InvalidRelease
    assert verdict == "continue"
    assert reason.startswith(NO_TRAFFIC)
    assert "progress deadline, 600 s" in reason
    run.judged(verdict, reason)
    assert run.noted("step 1/2: 10% to release 2") == f"step 1/2: 10% to release 2 — {reason}"
    assert judge(STEP, run, DEFAULT_PROGRESS_DEADLINE_S - 1, NONE)[0] == "continue"


def test_no_traffic_fails_at_the_progress_deadline_with_the_reason() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=100.0)
    assert judge(STEP, run, 100.0 + 119, NONE, deadline=120)[0] == "continue"
    assert judge(STEP, run, 100.0 + 120, NONE, deadline=120) == (
        "abort",
        "no traffic to analyse within the progress deadline (120 s)",
    )


def test_too_little_traffic_waits_too_and_says_how_much() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    verdict, reason = judge(STEP, run, 70.0, ReleaseCounts(total=3))
    assert verdict == "continue"
    assert reason.startswith("too little traffic to analyse (3 of 20 requests)")


def test_allow_no_traffic_promotes_an_analysis_without_data() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    assert judge(STEP, run, 30.0, NONE, allow_no_traffic=True) == ("continue", "")  # the window first
    verdict, reason = judge(STEP, run, 60.0, NONE, allow_no_traffic=True)
    assert (verdict, reason) == ("next", "no traffic to analyse; promoted without analysis (allowNoTraffic)")
    run.judged(verdict, reason)
    assert run.note == ""
    # a few requests are data: they are not promoted blindly
    assert judge(STEP, run, 60.0, ReleaseCounts(total=3), allow_no_traffic=True)[0] == "continue"
    # a query without data passes too, with the reason
    query = {"weight": 10, "analysis": {"window": "10s", "query": "sum(x)", "maxValue": 1}}
    assert judge(query, run, 10.0, None, lambda _: None, allow_no_traffic=True) == (
        "next",
        "no data for query 'sum(x)'; promoted without analysis (allowNoTraffic)",
    )


def test_traffic_with_errors_still_aborts_as_before() -> None:
    run = CanaryRun(stable=1, canary=2, step_started=0.0)
    failing = ReleaseCounts(total=40, errors=10)
    for allow in (False, True):
        assert judge(STEP, run, 5.0, failing, allow_no_traffic=allow) == (
            "abort",
            "error rate 0.250 > 0.01 over 40 requests",
        )
    assert judge(STEP, run, 60.0, ReleaseCounts(total=40)) == ("next", "")
    assert judge(STEP, run, 60.0, None)[0] == "abort"  # the router's metrics unreadable: never promoted


def test_the_settings_carry_allow_no_traffic_and_the_progress_deadline() -> None:
    doc = {
        "rollout": {
            "strategy": "canary",
            "steps": [STEP],
            "allowNoTraffic": True,
            "progressDeadlineSeconds": 120,
        }
    }
    effective = parse_settings(doc).to_dict()
    assert effective["rollout"]["allowNoTraffic"] is True
    assert effective["rollout"]["progressDeadlineSeconds"] == 120
    assert analysis_options(effective) == {"allow_no_traffic": True, "deadline": 120.0}
    assert analysis_options({"rollout": {"strategy": "canary"}}) == {
        "allow_no_traffic": False,
        "deadline": DEFAULT_PROGRESS_DEADLINE_S,
    }
    with pytest.raises(UserError) as err:
        parse_settings({"rollout": {"strategy": "canary", "steps": [STEP], "allowNoTraffic": "yes"}})
    assert [p.path for p in err.value.problems] == ["settings.rollout.allowNoTraffic"]


def test_the_progress_deadline_is_validated_for_every_strategy() -> None:
    rolling = parse_settings({"rollout": {"strategy": "rolling", "progressDeadlineSeconds": 300}})
    assert rolling.to_dict()["rollout"]["progressDeadlineSeconds"] == 300
    assert "progressDeadlineSeconds" not in parse_settings({}).to_dict()["rollout"]  # the default: 600
    for bad in (5, 86_401, "10m", True, 1.5):
        with pytest.raises(UserError) as err:
            parse_settings({"rollout": {"progressDeadlineSeconds": bad}})
        (problem,) = err.value.problems
        assert problem.path == "settings.rollout.progressDeadlineSeconds"
        assert problem.message == "must be an integer 10-86400 (seconds; default 600)"
