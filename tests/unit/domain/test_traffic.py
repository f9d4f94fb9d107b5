"""Traffic policy model: parsing, field paths, canonical form, access decisions."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import parse_settings
from yunzhou.domain.traffic import (
    AccessPolicy,
    CallerRef,
    HeaderMatch,
    format_duration,
    parse_traffic,
    regex_problem,
)

FULL: dict[str, Any] = {
    "routes": [
        {
            "name": "pin",
            "match": {
                "host": "a.example.test",
                "path": {"prefix": "/api"},
                "headers": {"x-canary": {"exact": "always"}},
            },
            "to": [{"release": "canary"}],
            "timeouts": {"perTry": "200ms", "overall": "1s"},
        },
        {"name": "split", "to": [{"release": "stable", "weight": 80}, {"release": "canary", "weight": 20}]},
    ],
    "timeouts": {"perTry": "2s", "overall": "10s"},
    "retries": {
        "attempts": 2,
        "retryOn": ["5xx", "connect-failure"],
        "budget": {"percent": 20, "minPerSecond": 5},
    },
    "connectionPool": {"maxConnections": 10, "maxPending": 5, "maxRequestsPerConnection": 100},
    "outlierDetection": {
        "consecutive5xx": 3,
        "interval": "1s",
        "baseEjectionTime": "2s",
        "maxEjectionPercent": 50,
    },
    "loadBalancer": {"policy": "consistent-hash", "hashOn": {"header": "X-User"}},
    "rateLimit": {"rps": 5, "burst": 10, "perCaller": {"rps": 1, "burst": 2}},
    "access": {"default": "deny", "allow": ["frontend", "shop/prod/*"], "deny": ["evil"], "external": False},
    "mtls": True,
}


def problems_of(doc: Any) -> dict[str, str]:
    with pytest.raises(UserError) as info:
        parse_traffic(doc)
    return {p.path: p.message for p in info.value.problems}


def test_full_policy_round_trips_through_its_canonical_form() -> None:
    policy = parse_traffic(FULL)
    assert policy.routes[0].match.headers == (HeaderMatch("x-canary", "exact", "always"),)
    assert policy.routes[0].to[0].weight == 100
    assert policy.load_balancer.hash_key == "x-user"
    assert policy.retries is not None
    assert policy.retries.on == ("connect-failure", "5xx")
    assert policy.timeouts is not None
    assert policy.timeouts.per_try == 2.0
    again = parse_traffic(policy.to_dict())
    assert again == policy
    assert policy.to_dict()["routes"][0]["timeouts"] == {"perTry": "200ms", "overall": "1s"}


def test_settings_carry_traffic_and_progressive_rollout() -> None:
    settings = parse_settings(
        {
            "traffic": {"retries": {"attempts": 1}},
            "rollout": {
                "strategy": "canary",
                "steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "analysis": {"maxErrorRate": 0.05}}],
            },
        }
    )
    assert settings.traffic.retries is not None
    assert settings.traffic.retries.attempts == 1
    assert settings.progressive is not None
    assert [s.weight for s in settings.progressive.steps] == [10, 50]
    assert settings.rollout.strategy == "canary"
    assert parse_settings(settings.to_dict()) == settings
    assert "traffic" not in parse_settings({}).to_dict()


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        (
            {
                "routes": [
                    {
                        "name": "a",
                        "to": [{"release": "stable", "weight": 50}, {"release": "canary", "weight": 40}],
                    }
                ]
            },
            "settings.traffic.routes.0.to",
            "sum to 100",
        ),
        (
            {"routes": [{"name": "a", "to": [{"release": "blue"}]}]},
            "settings.traffic.routes.0.to.0.release",
            "stable",
        ),
        ({"routes": [{"name": "a"}, {"name": "a"}]}, "settings.traffic.routes.1.name", "duplicate"),
        (
            {"routes": [{"name": "a", "match": {"headers": {"x": {"regex": "(a)\\1"}}}}]},
            "settings.traffic.routes.0.match.headers.x.regex",
            "RE2",
        ),
        (
            {"routes": [{"name": "a", "match": {"headers": {"x": {"regex": "a" * 300}}}}]},
            "settings.traffic.routes.0.match.headers.x.regex",
            "at most",
        ),
        (
            {"routes": [{"name": "a", "match": {"headers": {"x-yunzhou-caller": {"exact": "x"}}}}]},
            "settings.traffic.routes.0.match.headers.x-yunzhou-caller",
            "set by the router",
        ),
        (
            {"routes": [{"name": "a", "match": {"path": {"glob": "/x"}}}]},
            "settings.traffic.routes.0.match.path",
            "prefix",
        ),
        ({"timeouts": {"perTry": "5s", "overall": "1s"}}, "settings.traffic.timeouts.perTry", "overall"),
        ({"timeouts": {"overall": "soon"}}, "settings.traffic.timeouts.overall", "duration"),
        ({"retries": {"attempts": 99}}, "settings.traffic.retries.attempts", "0-10"),
        ({"retries": {"attempts": 1, "retryOn": ["always"]}}, "settings.traffic.retries.retryOn", "5xx"),
        ({"outlierDetection": {"consecutive5xx": 0}}, "settings.traffic.outlierDetection", "both be 0"),
        (
            {"outlierDetection": {"maxEjectionPercent": 101}},
            "settings.traffic.outlierDetection.maxEjectionPercent",
            "0-100",
        ),
        ({"loadBalancer": {"policy": "consistent-hash"}}, "settings.traffic.loadBalancer.hashOn", "required"),
        ({"loadBalancer": {"policy": "random"}}, "settings.traffic.loadBalancer.policy", "round-robin"),
        (
            {"loadBalancer": {"hashOn": {"source": True}}},
            "settings.traffic.loadBalancer.hashOn",
            "consistent-hash",
        ),
        ({"rateLimit": {"rps": 0}}, "settings.traffic.rateLimit.rps", "number"),
        ({"rateLimit": {"perCaller": {"burst": 3}}}, "settings.traffic.rateLimit.perCaller.rps", "required"),
        ({"access": {"default": "allow"}}, "settings.traffic.access.default", "deny"),
        ({"access": {"allow": ["shop/prod"]}}, "settings.traffic.access.allow.0", "project/env/app"),
        ({"mtls": "yes"}, "settings.traffic.mtls", "true or false"),
        ({"routing": []}, "settings.traffic.routing", "unknown field"),
    ],
)
def test_problems_name_the_field(doc: Any, path: str, fragment: str) -> None:
    found = problems_of(doc)
    assert path in found, found
    assert fragment in found[path]


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of({"retries": {"attempts": -1}, "mtls": 1, "connectionPool": {"maxConnections": 0}})
    assert set(found) == {
        "settings.traffic.retries.attempts",
        "settings.traffic.mtls",
        "settings.traffic.connectionPool.maxConnections",
    }


@pytest.mark.parametrize(
    ("rollout", "path"),
    [
        ({"strategy": "canary"}, "settings.rollout.steps"),
        (
            {"strategy": "canary", "steps": [{"weight": 50}, {"weight": 10}]},
            "settings.rollout.steps.1.weight",
        ),
        (
            {"strategy": "canary", "steps": [{"weight": 10, "pause": "1s", "analysis": {}}]},
            "settings.rollout.steps.0",
        ),
        (
            {"strategy": "canary", "steps": [{"weight": 10, "analysis": {"maxErrorRate": 2}}]},
            "settings.rollout.steps.0.analysis.maxErrorRate",
        ),
        (
            {"strategy": "canary", "steps": [{"weight": 10, "analysis": {"query": "sum(x)"}}]},
            "settings.rollout.steps.0.analysis.maxValue",
        ),
        (
            {"strategy": "canary", "steps": [{"weight": 10, "analysis": {"maxValue": 1}}]},
            "settings.rollout.steps.0.analysis.maxValue",
        ),
        ({"strategy": "blue-green", "analysis": {"query": "sum(x)"}}, "settings.rollout.analysis.maxValue"),
        ({"strategy": "blue-green", "steps": [{"weight": 10}]}, "settings.rollout.steps"),
        ({"strategy": "blue-green", "previewHost": "Not A Host"}, "settings.rollout.previewHost"),
        ({"strategy": "big-bang"}, "settings.rollout.strategy"),
    ],
)
def test_progressive_rollout_problems(rollout: dict[str, Any], path: str) -> None:
    with pytest.raises(UserError) as info:
        parse_settings({"rollout": rollout})
    assert path in {p.path for p in info.value.problems}, info.value.problems


def test_access_decisions_name_the_rule() -> None:
    own = {"own_project": "shop", "own_env": "dev"}
    default = AccessPolicy()
    assert default.decide(("shop", "dev", "web"), **own) == (True, "access.default")
    assert default.decide(("shop", "prod", "web"), **own) == (False, "access.default")
    assert default.decide(None, **own) == (True, "access.external")
    strict = AccessPolicy(
        default="deny",
        allow=(CallerRef("web"), CallerRef("*", "shop", "prod")),
        deny=(CallerRef("web"),),
        external=False,
    )
    assert strict.decide(("shop", "dev", "web"), **own) == (False, "access.deny.0")
    assert strict.decide(("shop", "prod", "api"), **own) == (True, "access.allow.1")
    assert strict.decide(("shop", "dev", "api"), **own) == (False, "access.default")
    assert strict.decide(None, **own) == (False, "access.external")


def test_durations_and_regexes() -> None:
    assert [format_duration(s) for s in (0.5, 30, 1.5, 0.001)] == ["500ms", "30s", "1.5s", "1ms"]
    assert regex_problem("^Mozilla/.*Mobile") is None
    assert regex_problem("(?=x)") is not None


def test_analysis_query_with_its_max_value_round_trips() -> None:
    query = 'sum(rate(my_errors_total{release="2"}[1m]))'
    settings = parse_settings(
        {
            "rollout": {
                "strategy": "canary",
                "steps": [{"weight": 10, "analysis": {"window": "30s", "query": query, "maxValue": 0.05}}],
            }
        }
    )
    assert settings.progressive is not None
    analysis = settings.progressive.steps[0].analysis
    assert analysis is not None
    assert (analysis.query, analysis.max_value, analysis.max_error_rate) == (query, 0.05, None)
    assert settings.to_dict()["rollout"]["steps"][0]["analysis"]["maxValue"] == 0.05
    assert parse_settings(settings.to_dict()) == settings
