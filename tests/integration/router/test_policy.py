"""Traffic policy enforced by a real router process in front of real backend processes."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from yunzhou.router import RouterProcess

from .conftest import Backend, admin_client, metric_value, proxy_client, route, snapshot, wait_for

HOST = "orders.dev.shop.localhost"
APP = "shop/dev/orders"


def control(backend: Backend, path: str) -> Any:
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.get(f"http://{backend.address}/control/{path}").json()


def policy(traffic: dict[str, Any], split: dict[str, int] | None = None, **more: Any) -> dict[str, Any]:
    return {"traffic": traffic, "split": split or {"stable": 100}, **more}


def with_policies(doc: dict[str, Any], **policies: Any) -> dict[str, Any]:
    doc["policies"] = {app.replace("__", "/"): p for app, p in policies.items()}
    return doc


def canary_entry(backend: Backend, release: int = 2) -> dict[str, Any]:
    return {**backend.entry(release), "track": "canary"}


def backend_names(client: httpx.Client, count: int, **headers: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = client.get("/", headers={"Host": HOST, **headers})
        assert response.status_code == 200, response.text
        seen[response.json()["backend"]] += 1
    return seen


def test_a_20_percent_canary_gets_20_percent_of_2000_requests(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    a1, b1 = backends["a1"], backends["b1"]
    doc = snapshot(1, route(HOST, [a1.entry(1), canary_entry(b1)], app=APP))
    router.push_config(with_policies(doc, shop__dev__orders=policy({}, {"stable": 80, "canary": 20})))
    with proxy_client(router) as client:
        seen = backend_names(client, 2000)
    assert 340 <= seen["b1"] <= 460, seen  # 20% ± 3% of 2000
    metrics = router.metrics_text()
    assert (
        metric_value(metrics, "yunzhou_router_requests_total", app=APP, release="2", code="2xx") == seen["b1"]
    )


def test_header_rules_and_preview_host_pin_the_canary(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    a1, b1 = backends["a1"], backends["b1"]
    rules = {
        "routes": [
            {
                "name": "beta-users",
                "match": {"path": {"prefix": "/"}, "headers": {"x-user": {"regex": "^beta-[0-9]+$"}}},
                "to": [{"release": "canary"}],
            },
            {
                "name": "mobile",
                "match": {"headers": {"user-agent": {"prefix": "Mobile"}}},
                "to": [{"release": "stable"}],
            },
        ]
    }
    preview = "preview.orders.dev.shop.localhost"
    doc = snapshot(
        1,
        route(HOST, [a1.entry(1), canary_entry(b1)], app=APP),
        route(preview, [a1.entry(1), canary_entry(b1)], app=APP),
    )
    router.push_config(
        with_policies(doc, shop__dev__orders=policy(rules, {"stable": 100}, preview_hosts=[preview]))
    )
    with proxy_client(router) as client:
        assert backend_names(client, 20) == {"a1": 20}  # the split sends everything to stable
        assert backend_names(client, 20, **{"x-canary": "always"}) == {"b1": 20}
        assert backend_names(client, 20, **{"x-user": "beta-17"}) == {"b1": 20}
        assert backend_names(client, 20, **{"x-user": "beta-x"}) == {"a1": 20}
        seen = Counter(client.get("/", headers={"Host": preview}).json()["backend"] for _ in range(10))
        assert seen == {"b1": 10}


def test_retries_hide_a_half_failing_instance_and_the_budget_caps_amplification(
    router: RouterProcess, backend_factory: Callable[[str], Backend]
) -> None:
    good, flaky, broken = backend_factory("good"), backend_factory("flaky"), backend_factory("broken")
    control(flaky, "fail?rate=0.5&code=503")
    control(broken, "fail?rate=1&code=500")
    retrying = {"retries": {"attempts": 2, "retryOn": ["5xx"], "budget": {"percent": 50, "minPerSecond": 5}}}
    budgeted = {"retries": {"attempts": 3, "retryOn": ["5xx"], "budget": {"percent": 20, "minPerSecond": 1}}}
    doc = snapshot(
        1,
        route(HOST, [good.entry(), flaky.entry()], app=APP),
        route("broken.dev.shop.localhost", [broken.entry()], app="shop/dev/broken"),
    )
    router.push_config(
        with_policies(doc, shop__dev__orders=policy(retrying), shop__dev__broken=policy(budgeted))
    )
    with proxy_client(router) as client:
        statuses = Counter(client.get("/", headers={"Host": HOST}).status_code for _ in range(1000))
        assert statuses[200] >= 995, statuses
        assert control(flaky, "stats")["failed"] >= 200  # the instance really failed that often
        requests = 500
        started = time.monotonic()
        outage = Counter(
            client.get("/", headers={"Host": "broken.dev.shop.localhost"}).status_code
            for _ in range(requests)
        )
        elapsed = time.monotonic() - started
    assert outage == {500: requests}
    seen = control(broken, "stats")["count"]
    # Without a budget 3 retries would make 2000 attempts; the budget allows 20% of requests plus 1/s
    # (over a sliding 10 s window).
    assert seen <= requests * 1.2 + (elapsed + 10) * 1 + 2, (seen, elapsed)
    assert seen < requests * 1.5, seen
    metrics = router.metrics_text()
    assert metric_value(metrics, "yunzhou_router_retries_total", app=APP, reason="gateway-error") >= 200
    assert (
        metric_value(metrics, "yunzhou_router_retry_budget_exhausted_total", app="shop/dev/broken", route="-")
        > 0
    )


def test_a_failing_instance_is_ejected_and_readmitted(
    router: RouterProcess, backend_factory: Callable[[str], Backend]
) -> None:
    good, bad = backend_factory("good"), backend_factory("bad")
    control(bad, "fail?rate=1&code=500")
    outlier = {
        "outlierDetection": {
            "consecutive5xx": 3,
            "interval": "1s",
            "baseEjectionTime": "1s",
            "maxEjectionPercent": 50,
        }
    }
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [good.entry(), bad.entry()], app=APP)), shop__dev__orders=policy(outlier)
        )
    )
    with proxy_client(router) as client:

        def get() -> int:
            return client.get("/", headers={"Host": HOST}).status_code

        failures = 0
        for _ in range(10):  # round-robin: the third 5xx from "bad" ejects it
            ejected_at = time.monotonic()  # the ejection happens during the request that got the 3rd 5xx
            failures += get() == 500
            if failures == 3:
                break
        assert failures == 3
        before = control(bad, "stats")["count"]
        during: Counter[int] = Counter()
        while time.monotonic() - ejected_at < 0.8:  # well inside the 1 s ejection
            during[get()] += 1
        assert set(during) == {200}, during
        assert control(bad, "stats")["count"] == before
        # Readmitted after the base ejection time: it gets traffic again.
        wait_for(lambda: get() == 500, "the ejected instance to be readmitted", timeout=5)
        assert time.monotonic() - ejected_at >= 1.0
        control(bad, "fail?rate=0")
        healed = control(bad, "stats")["count"]

        def healed_serves() -> bool:
            get()
            return bool(control(bad, "stats")["count"] > healed + 3)

        wait_for(healed_serves, "traffic to reach the healed instance", 10)
    metrics = router.metrics_text()
    assert metric_value(metrics, "yunzhou_router_ejections_total", app=APP, backend="bad") == 1


def test_max_ejection_percent_keeps_half_the_instances(
    router: RouterProcess, backend_factory: Callable[[str], Backend]
) -> None:
    bad1, bad2 = backend_factory("bad1"), backend_factory("bad2")
    for b in (bad1, bad2):
        control(b, "fail?rate=1&code=503")
    outlier = {
        "outlierDetection": {"consecutiveGatewayErrors": 2, "consecutive5xx": 0, "maxEjectionPercent": 50}
    }
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [bad1.entry(), bad2.entry()], app=APP)), shop__dev__orders=policy(outlier)
        )
    )
    with proxy_client(router) as client:
        for _ in range(40):
            assert client.get("/", headers={"Host": HOST}).status_code == 503
    counts = [control(b, "stats")["count"] for b in (bad1, bad2)]
    assert min(counts) <= 3 < max(counts), counts  # one ejected, the other kept despite failing
    metrics = router.metrics_text()
    assert (
        sum(
            metric_value(metrics, "yunzhou_router_ejections_total", app=APP, backend=n)
            for n in ("bad1", "bad2")
        )
        == 1
    )


def test_rate_limit_answers_429_with_retry_after_at_the_configured_rate(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    limited = {"rateLimit": {"rps": 10, "burst": 5}}
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [backends["a1"].entry()], app=APP)), shop__dev__orders=policy(limited)
        )
    )
    with proxy_client(router) as client:
        started = time.monotonic()
        statuses: Counter[int] = Counter()
        refused = None
        while time.monotonic() - started < 2.0:
            response = client.get("/", headers={"Host": HOST})
            statuses[response.status_code] += 1
            if response.status_code == 429:
                refused = response
        elapsed = time.monotonic() - started
    assert refused is not None
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["policy"] == f"{APP} traffic.rateLimit"
    allowed = 5 + 10 * elapsed
    assert allowed - 3 <= statuses[200] <= allowed + 1, (statuses, elapsed)
    assert statuses[429] > 0
    metrics = router.metrics_text()
    assert (
        metric_value(metrics, "yunzhou_router_rate_limited_total", app=APP, policy="rateLimit")
        == statuses[429]
    )


def test_per_caller_rate_limit_counts_each_caller(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    tokens = {"web": "token-of-web", "jobs": "token-of-jobs"}
    limited = {"rateLimit": {"perCaller": {"rps": 0.001, "burst": 3}}}
    doc = snapshot(1, route(HOST, [backends["a1"].entry()], app=APP))
    doc["callers"] = {hashlib.sha256(t.encode()).hexdigest(): f"shop/dev/{app}" for app, t in tokens.items()}
    router.push_config(with_policies(doc, shop__dev__orders=policy(limited)))
    with proxy_client(router) as client:
        for app, token in tokens.items():
            codes = [
                client.get("/", headers={"Host": HOST, "x-yunzhou-caller-token": token}).status_code
                for _ in range(5)
            ]
            assert codes == [200, 200, 200, 429, 429], app


def test_a_may_call_b_but_b_may_not_call_a_and_identity_cannot_be_spoofed(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    a_host, b_host = "a.dev.shop.localhost", "b.dev.shop.localhost"
    token_a, token_b = "secret-token-a", "secret-token-b"
    doc = snapshot(
        1,
        route(a_host, [backends["a1"].entry()], app="shop/dev/a"),
        route(b_host, [backends["b1"].entry()], app="shop/dev/b"),
        route("c.prod.shop.localhost", [backends["b2"].entry()], app="shop/prod/c"),
    )
    doc["callers"] = {
        hashlib.sha256(token_a.encode()).hexdigest(): "shop/dev/a",
        hashlib.sha256(token_b.encode()).hexdigest(): "shop/dev/b",
    }
    router.push_config(with_policies(doc, shop__dev__a=policy({"access": {"deny": ["b"]}})))
    with proxy_client(router) as client:
        allowed = client.get("/", headers={"Host": b_host, "x-yunzhou-caller-token": token_a})
        assert allowed.status_code == 200
        assert allowed.json()["headers"]["x-yunzhou-caller"] == "shop/dev/a"
        assert "x-yunzhou-caller-token" not in allowed.json()["headers"]

        denied = client.get("/", headers={"Host": a_host, "x-yunzhou-caller-token": token_b})
        assert denied.status_code == 403
        error = denied.json()["error"]
        assert error["code"] == "access_denied"
        assert error["policy"] == "shop/dev/a traffic.access.deny.0"
        assert error["caller"] == "shop/dev/b"

        # Another environment is refused by default; outside requests carry no identity at all.
        cross = client.get("/", headers={"Host": "c.prod.shop.localhost", "x-yunzhou-caller-token": token_a})
        assert cross.status_code == 403
        assert cross.json()["error"]["policy"] == "shop/prod/c traffic.access.default"
        spoofed = client.get("/", headers={"Host": b_host, "x-yunzhou-caller": "shop/dev/a"})
        assert spoofed.status_code == 200
        assert "x-yunzhou-caller" not in spoofed.json()["headers"]
        forged = client.get("/", headers={"Host": a_host, "x-yunzhou-caller-token": "guessed"})
        assert forged.status_code == 200  # an unknown token is no identity: an outside request
        assert "x-yunzhou-caller" not in forged.json()["headers"]
    metrics = router.metrics_text()
    assert metric_value(metrics, "yunzhou_router_denied_total", app="shop/dev/a", policy="access.deny.0") == 1


def test_default_deny_and_no_external(router: RouterProcess, backends: dict[str, Backend]) -> None:
    doc = snapshot(1, route(HOST, [backends["a1"].entry()], app=APP))
    doc["callers"] = {hashlib.sha256(b"tok-web").hexdigest(): "shop/dev/web"}
    strict = {"access": {"default": "deny", "allow": ["web"], "external": False}}
    router.push_config(with_policies(doc, shop__dev__orders=policy(strict)))
    with proxy_client(router) as client:
        assert client.get("/", headers={"Host": HOST, "x-yunzhou-caller-token": "tok-web"}).status_code == 200
        outside = client.get("/", headers={"Host": HOST})
        assert outside.status_code == 403
        assert outside.json()["error"]["policy"] == f"{APP} traffic.access.external"


def test_timeouts_per_try_and_overall(router: RouterProcess, backends: dict[str, Backend]) -> None:
    timeouts = {"timeouts": {"perTry": "200ms", "overall": "1s"}}
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [backends["a1"].entry()], app=APP)), shop__dev__orders=policy(timeouts)
        )
    )
    with proxy_client(router) as client:
        started = time.monotonic()
        response = client.get("/slow?s=0.6", headers={"Host": HOST})
        assert response.status_code == 504
        assert response.json()["error"]["policy"] == f"{APP} traffic.timeouts.perTry"
        assert time.monotonic() - started < 0.55
        assert client.get("/slow?s=0.05", headers={"Host": HOST}).status_code == 200


def test_connection_pool_limits_queue_and_overflow(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    pool = {"connectionPool": {"maxConnections": 1, "maxPending": 1}}
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [backends["a2"].entry()], app=APP)), shop__dev__orders=policy(pool)
        )
    )
    import concurrent.futures

    def slow(_: int) -> int:
        with proxy_client(router) as client:
            return client.get("/slow?s=0.5", headers={"Host": HOST}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        codes = Counter(executor.map(slow, range(4)))
    assert codes == {200: 2, 503: 2}, codes  # one in flight, one queued, the rest refused
    metrics = router.metrics_text()
    assert metric_value(metrics, "yunzhou_router_pool_overflow_total", app=APP, policy="connectionPool") == 2


def test_consistent_hash_keeps_a_user_on_one_instance(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    lb = {"loadBalancer": {"policy": "consistent-hash", "hashOn": {"header": "x-user"}}}
    entries = [backends[n].entry() for n in ("a1", "a2", "a3")]
    router.push_config(
        with_policies(snapshot(1, route(HOST, entries, app=APP)), shop__dev__orders=policy(lb))
    )
    with proxy_client(router) as client:
        homes = {}
        for user in range(30):
            seen = backend_names(client, 5, **{"x-user": f"user-{user}"})
            assert len(seen) == 1, seen
            homes[user] = next(iter(seen))
    assert len(set(homes.values())) == 3  # users spread over every instance


def test_an_app_with_an_invalid_policy_is_not_routed_and_the_reason_names_the_fields(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    doc = with_policies(
        snapshot(1, route(HOST, [backends["a1"].entry()], app=APP)),
        shop__dev__orders=policy({"retries": {"attempts": 99}}, {"stable": 50, "canary": 40}),
    )
    with admin_client(router) as admin:
        response = admin.put("/config", json=doc)
    assert response.status_code == 200  # fail closed for that app only: the rest of a snapshot is applied
    (dropped,) = response.json()["dropped"]
    assert "policies.shop/dev/orders.traffic.retries.attempts" in dropped["reason"]
    assert "policies.shop/dev/orders.split" in dropped["reason"]
