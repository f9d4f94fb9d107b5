from __future__ import annotations

import pytest

from yunzhou.domain.alerts import (
    DEFAULTS_BY_NAME,
    AlertRule,
    Sample,
    evaluate,
    expand,
    format_duration,
    parse_duration,
    parse_matchers,
    parse_override,
    parse_rule,
    render_default,
    samples_of,
)
from yunzhou.domain.errors import UserError


def test_durations_round_trip() -> None:
    assert parse_duration("2m", "for") == 120
    assert parse_duration("1h30m", "for") == 5400
    assert parse_duration("500ms", "for") == 0.5
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "500ms"
    with pytest.raises(UserError) as err:
        parse_duration("2 minutes", "rule.for")
    assert err.value.problems[0].path == "rule.for"


def test_parse_rule_reports_every_problem_with_its_path() -> None:
    with pytest.raises(UserError) as err:
        parse_rule(
            {"alert": "bad name", "for": "x", "annotations": {"s": "{{ .Foo }}"}, "actions": [{"type": "x"}]}
        )
    paths = {p.path for p in err.value.problems}
    assert paths == {"rule.alert", "rule.expr", "rule.for", "rule.annotations.s", "rule.actions.0.type"}


def test_parse_rule_round_trips_the_prometheus_format() -> None:
    doc = {
        "alert": "Slow",
        "expr": "x > 1",
        "for": "3m",
        "keep_firing_for": "1m",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "{{ $labels.app }} is {{ $value }}"},
        "actions": [{"type": "scale", "by": 2, "max": 5}],
    }
    rule = parse_rule(doc)
    assert rule.for_s == 180
    assert rule.keep_firing_for_s == 60
    out = rule.to_dict()
    assert out["for"] == "3m"
    assert out["actions"] == [{"type": "scale", "by": 2, "max": 5}]
    assert "actions" not in rule.prometheus_rule()


def test_templates_expand_labels_and_value() -> None:
    labels = {"app": "web"}
    assert expand("{{ $labels.app }}: {{ $value }}", labels, 3.0) == "web: 3"
    assert expand("{{ $value | humanizePercentage }}", labels, 0.125) == "12.5%"
    assert expand('{{ $value | printf "%.2f" }}', labels, 0.125) == "0.12"
    assert expand("{{ $labels.missing }}!", labels, 1.0) == "!"


def test_default_rules_select_the_app_and_take_overrides_in_order() -> None:
    d = DEFAULTS_BY_NAME["AppErrorRateHigh"]
    rule = render_default(d, "shop", "dev", "web", [{"threshold": 0.1}, {"for": "30s", "window": "20s"}])
    assert rule is not None
    assert 'app="web"' in rule.expr
    assert 'code="5xx"' in rule.expr
    assert "[20s]" in rule.expr
    assert rule.expr.endswith("> 0.1")
    assert rule.for_s == 30
    assert rule.labels["severity"] == "critical"
    assert render_default(d, "shop", "dev", "web", [{"enabled": False}]) is None
    assert render_default(d, "shop", "dev", "web", [{"enabled": False}, {"enabled": True}]) is not None


def test_override_rejects_unknown_fields() -> None:
    with pytest.raises(UserError) as err:
        parse_override({"treshold": 1, "window": "abc"})
    assert {p.path for p in err.value.problems} == {"override.treshold", "override.window"}


def test_state_machine_pending_firing_resolved() -> None:
    rule = AlertRule(
        "E", "x > 1", for_s=60, labels={"severity": "critical"}, annotations={"s": "{{ $value }}"}
    )
    high = [Sample({"app": "web"}, 2.0)]
    states, changes = evaluate(rule, {}, high, now=0)
    assert [c.to for c in changes] == ["pending"]
    states, changes = evaluate(rule, states, high, now=30)
    assert changes == []
    assert next(iter(states.values())).state == "pending"
    states, changes = evaluate(rule, states, high, now=60)
    assert [c.to for c in changes] == ["firing"]
    alert = next(iter(states.values()))
    assert alert.labels == {"app": "web", "severity": "critical", "alertname": "E"}
    assert alert.annotations == {"s": "2"}
    states, changes = evaluate(rule, states, [], now=75)
    assert states == {}
    assert [c.to for c in changes] == ["resolved"]


def test_pending_that_clears_goes_inactive_and_keep_firing_for_holds() -> None:
    rule = AlertRule("E", "x", for_s=10, keep_firing_for_s=30)
    states, _ = evaluate(rule, {}, [Sample({}, 1)], now=0)
    gone, changes = evaluate(rule, states, [], now=5)
    assert gone == {}
    assert [c.to for c in changes] == ["inactive"]
    states, _ = evaluate(rule, states, [Sample({}, 1)], now=10)
    held, changes = evaluate(rule, states, [], now=20)  # the first miss: keep_firing_for counts from here
    assert changes == []
    assert next(iter(held.values())).state == "firing"
    held, changes = evaluate(rule, held, [], now=40)
    assert changes == []
    _, changes = evaluate(rule, held, [], now=50)
    assert [c.to for c in changes] == ["resolved"]


def test_keep_firing_for_one_interval_holds_one_missed_evaluation() -> None:
    """Prometheus stamps KeepFiringSince at the first evaluation that misses the alert, so a grace of one
    evaluation interval forgives one miss (counted from the last hit it would forgive none)."""
    rule = AlertRule("E", "x", keep_firing_for_s=15)
    states, _ = evaluate(rule, {}, [Sample({}, 1)], now=0)
    held, changes = evaluate(rule, states, [], now=15)
    assert changes == []
    assert next(iter(held.values())).state == "firing"
    back, _ = evaluate(rule, held, [Sample({}, 1)], now=30)  # seen again: the grace starts over
    assert next(iter(back.values())).keep_firing_since is None
    held, changes = evaluate(rule, back, [], now=45)
    assert changes == []
    _, changes = evaluate(rule, held, [], now=60)
    assert [c.to for c in changes] == ["resolved"]


def test_for_zero_fires_at_once() -> None:
    _, changes = evaluate(AlertRule("E", "x"), {}, [Sample({}, 1)], now=0)
    assert [c.to for c in changes] == ["pending", "firing"]


def test_samples_of_a_prometheus_result() -> None:
    data = {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "up", "app": "a"}, "value": [1, "0.5"]}],
    }
    assert samples_of(data) == [Sample({"app": "a"}, 0.5)]
    assert samples_of({"resultType": "scalar", "result": [1, "3"]}) == [Sample({}, 3.0)]
    with pytest.raises(UserError):
        samples_of({"resultType": "matrix", "result": []})


def test_matchers() -> None:
    ms = parse_matchers(['app="web"', "severity=~crit.*", {"name": "env", "value": "prod", "isEqual": False}])
    assert all(m.matches({"app": "web", "severity": "critical", "env": "dev"}) for m in ms)
    assert not ms[2].matches({"env": "prod"})
    with pytest.raises(UserError):
        parse_matchers(['app=~".*"'])
    with pytest.raises(UserError) as err:
        parse_matchers(["app=~(("])
    assert err.value.problems[0].path == "matchers.0.value"


def test_matcher_text_round_trips_quotes_and_escapes() -> None:
    matcher = parse_matchers(['msg="say \\"hi\\" \\\\d"'])[0]
    assert matcher.value == 'say "hi" \\d'
    assert parse_matchers([str(matcher)])[0] == matcher


def test_rule_labels_are_templates_as_in_prometheus() -> None:
    rule = parse_rule(
        {"alert": "E", "expr": "x", "labels": {"owner": "team-{{ $labels.team }}", "team": "", "sev": "page"}}
    )
    states, _ = evaluate(rule, {}, [Sample({"team": "pay", "app": "web"}, 1)], now=0)
    assert next(iter(states.values())).labels == {
        "app": "web",
        "owner": "team-pay",
        "sev": "page",
        "alertname": "E",
    }
    with pytest.raises(UserError) as err:
        parse_rule({"alert": "E", "expr": "x", "labels": {"owner": "{{ .Foo }}"}})
    assert err.value.problems[0].path == "rule.labels.owner"


def test_humanize_duration_as_prometheus_writes_it() -> None:
    """A p95 of 1.4 s must not read "1s" next to a 1 s threshold."""
    cases = {1.4: "1.4s", 90: "1m 30s", 3725: "1h 2m 5s", 0.25: "250ms", 0.0005: "500us", 0: "0s"}
    for value, text in cases.items():
        assert expand("{{ $value | humanizeDuration }}", {}, value) == text, value


def test_humanize_as_prometheus_writes_it() -> None:
    cases = {1234: "1.234k", 2.5e15: "2.5P", 0.5: "500m", 0: "0", 12: "12"}
    for value, text in cases.items():
        assert expand("{{ $value | humanize }}", {}, value) == text, value
