"""The router's policy pieces with an injected clock: buckets, retry budget, outlier ejection."""

from __future__ import annotations

from yunzhou.domain.traffic import RateLimit, parse_traffic
from yunzhou.router.config import Backend, parse_snapshot
from yunzhou.router.policy import AppPolicy, PolicyState, RetryBudget, TokenBucket


def backend(name: str, track: str = "stable") -> Backend:
    return Backend(id=name, address="127.0.0.1:1", host="127.0.0.1", port=1, release=1, track=track)


def test_token_bucket_refills_at_the_rate_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(RateLimit(rps=2, burst=2), now=0.0)
    assert [bucket.take(0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(0.0) == 0.5
    assert bucket.take(0.5) == 0.0


def test_retry_budget_allows_percent_of_requests_plus_a_floor() -> None:
    budget = RetryBudget()
    for _ in range(100):
        budget.note_request(5.0)
    granted = sum(budget.try_retry(20, 1, 5.0) for _ in range(100))
    assert granted == 20 + 10  # 20% of 100 plus 1/s over the 10 s window
    assert not budget.try_retry(20, 1, 14.9)
    assert budget.try_retry(20, 1, 15.5)  # the window slid past the second that used it up


def test_outlier_ejection_grows_with_each_ejection_and_respects_max_percent() -> None:
    traffic = parse_traffic(
        {"outlierDetection": {"consecutive5xx": 2, "baseEjectionTime": "10s", "maxEjectionPercent": 50}}
    )
    policy = AppPolicy("shop/dev/a", traffic, (("stable", 100),), frozenset(), PolicyState(doc=None), 0.0)
    a, b = backend("a"), backend("b")
    ids = (a, b)
    assert not policy.record(a, 500, False, 0.0, ids)
    assert policy.record(a, 500, False, 0.0, ids)
    assert policy.state.health["a"].ejected_until == 10.0
    assert not policy.record(b, 500, False, 1.0, ids)
    assert not policy.record(b, 500, False, 1.0, ids)  # a second ejection would exceed 50%
    # readmitted at 10 s; the next ejection lasts 2 × the base time
    assert not policy.record(a, 503, True, 11.0, ids)
    assert policy.record(a, 503, True, 11.0, ids)
    assert policy.state.health["a"].ejected_until == 31.0
    assert [x.id for x in policy.order((a, b), policy.decide("h", "/", {}, ""), 12.0, {})] == ["b"]


def test_snapshot_with_policies_and_callers_round_trips() -> None:
    doc = {
        "version": 3,
        "routes": [
            {
                "host": "a.dev.shop.localhost",
                "path_prefix": "/",
                "app": "shop/dev/a",
                "backends": [{"id": "x", "address": "127.0.0.1:5", "release": 2, "track": "canary"}],
            }
        ],
        "policies": {
            "shop/dev/a": {"traffic": {"retries": {"attempts": 1}}, "split": {"stable": 90, "canary": 10}}
        },
        "callers": {"0" * 64: "shop/dev/b"},
    }
    snap = parse_snapshot(doc)
    assert snap.to_json() == doc
    assert snap.routes[0].backends[0].track == "canary"
    assert snap.policies["shop/dev/a"].split == (("stable", 90), ("canary", 10))


def test_decisions_follow_the_matching_route_and_only_hash_keys_vary_per_request() -> None:
    traffic = parse_traffic(
        {
            "timeouts": {"perTry": "2s"},
            "routes": [
                {
                    "name": "beta",
                    "match": {"path": {"prefix": "/beta/"}, "headers": {"x-user": {"regex": "^beta-[0-9]+"}}},
                    "to": [{"release": "canary"}],
                    "timeouts": {"perTry": "1s"},
                }
            ],
        }
    )
    policy = AppPolicy("shop/dev/a", traffic, (("stable", 100),), frozenset(), PolicyState(doc=None), 0.0)
    beta = policy.decide("h", "/beta", {b"x-user": "beta-7"}, "10.0.0.1")
    assert (beta.route, beta.track, beta.timeouts and beta.timeouts.per_try) == ("beta", "canary", 1.0)
    assert policy.decide("h", "/beta/x", {b"x-user": "beta-8"}, "10.0.0.2") is beta  # made once, shared
    for path, headers in (("/betas", {b"x-user": "beta-7"}), ("/beta", {b"x-user": "beta-x"}), ("/", {})):
        other = policy.decide("h", path, headers, "10.0.0.1")
        assert (other.route, other.track, other.timeouts and other.timeouts.per_try) == ("", "stable", 2.0)
    pinned = policy.decide("h", "/", {b"x-canary": "always"}, "")
    assert (pinned.route, pinned.track, pinned.timeouts and pinned.timeouts.per_try) == ("", "canary", 2.0)

    hashing = parse_traffic({"loadBalancer": {"policy": "consistent-hash", "hashOn": {"source": True}}})
    by_source = AppPolicy("shop/dev/a", hashing, (("stable", 100),), frozenset(), PolicyState(doc=None), 0.0)
    keys = [by_source.decide("h", "/", {}, peer).hash_key for peer in ("10.0.0.1", "10.0.0.2")]
    assert keys == ["10.0.0.1", "10.0.0.2"]


def test_access_decisions_are_remembered_per_caller() -> None:
    traffic = parse_traffic({"access": {"default": "deny", "allow": ["web"]}})
    policy = AppPolicy("shop/dev/a", traffic, (("stable", 100),), frozenset(), PolicyState(doc=None), 0.0)
    assert policy.access(("shop", "dev", "web")) == (True, "access.allow.0")
    assert policy.access(("shop", "dev", "batch")) == (False, "access.default")
    assert policy.access(("shop", "dev", "web")) == (True, "access.allow.0")
