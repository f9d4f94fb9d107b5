"""The evaluator over the real embedded query engine and store, on SQLite and PostgreSQL: rules tuned per
scope, states and history kept in the database, a scale-out action through AppService with its
cool-down and hourly cap; and the API's validation, audit and access rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import Api
from tests.helpers import UnixClock, control_plane_with_app, score
from yunzhou.domain.errors import NotFound, UserError
from yunzhou.observe.alerts import AlertEvaluator, Notifier, alert_interval
from yunzhou.observe.alerts.evaluator import history_days
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.alerts import RuleScope
from yunzhou.store import Database
from yunzhou.store.models import App, Instance, Rollout

T0 = 1_800_000_000.0
LABELS = {"project": "shop", "env": "dev", "app": "orders", "release": "1"}


Clock = UnixClock  # starts at T0


@pytest.fixture
def world(database: Database, tmp_path: Path) -> Iterator[tuple[ControlPlane, MetricStore, Clock]]:
    clock = Clock()
    cp = control_plane_with_app(database, tmp_path / "data", clock, None)
    store = MetricStore.open(None)
    yield cp, store, clock
    store.close()


class LikeRemotePrometheus:
    """An engine the evaluator cannot restrict to a scope's series, as a remote Prometheus."""

    def __init__(self, store: MetricStore) -> None:
        self.engine = QueryEngine(store)

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        return self.engine.instant(expr, t)


def traffic(store: MetricStore, t: float, ok: float, failed: float) -> None:
    """Cumulative router counters at time t."""
    store.append_many([
        ("yunzhou_router_requests_total", {**LABELS, "code": "2xx"}, ok, t),
        ("yunzhou_router_requests_total", {**LABELS, "code": "5xx"}, failed, t),
    ])  # fmt: skip


def test_error_rate_rule_fires_scales_out_with_cooldown_and_resolves(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    cp, store, clock = world
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop", "dev"), "AppErrorRateHigh",
        {"window": "1m", "for": "30s", "actions": [{"type": "scale", "by": 2, "max": 4}], "cooldown": "1m",
         "max_actions_per_hour": 2},
    )  # fmt: skip
    cp.alerts.put_rule(SYSTEM, RuleScope(), "AppLatencyHigh", {"enabled": False})
    evaluator = AlertEvaluator(cp, QueryEngine(store), interval=15)
    t, ok, failed = T0, 0.0, 0.0
    for _ in range(8):  # healthy traffic: nothing pending
        t += 15
        ok += 150
        traffic(store, t, ok, failed)
        clock.t = t
        evaluator.evaluate_once(t)
    assert cp.alerts.active(SYSTEM, "shop") == []
    states = []
    for _ in range(12):  # half the requests fail
        t += 15
        ok, failed = ok + 75, failed + 75
        traffic(store, t, ok, failed)
        clock.t = t
        evaluator.evaluate_once(t)
        states.append([a["state"] for a in cp.alerts.active(SYSTEM, "shop", "dev", "orders")])
    assert states[0] == ["pending"]
    assert "firing" in states[2]
    history = cp.alerts.history(SYSTEM, "shop", kind="alert")
    assert [h["state"] for h in reversed(history)] == ["pending", "firing"]
    assert history[0]["release"] == 1
    # scaled 1 → 3 on firing, 3 → 4 after the cool-down; then the cap of 2 per hour holds
    actions = [a for a in cp.alerts.history(SYSTEM, "shop", kind="action") if a["state"] == "done"]
    assert [a["replicas"] for a in reversed(actions)] == [3, 4]
    assert cp.apps.get("shop", "dev", "orders")["replicas"] == 4
    audit = cp.audit.query(SYSTEM, action="alert.action.scale")
    assert audit[0]["detail"]["labels"]["alertname"] == "AppErrorRateHigh"
    assert cp.audit.query(SYSTEM, action="app.scale")[0]["actor"] == "alert:AppErrorRateHigh"
    for _ in range(6):  # healthy again: resolves
        t += 15
        ok += 150
        traffic(store, t, ok, failed)
        clock.t = t
        evaluator.evaluate_once(t)
    assert cp.alerts.active(SYSTEM, "shop") == []
    timeline = cp.alerts.timeline(SYSTEM, "shop", "dev", "orders")
    assert timeline[0]["state"] == "resolved"
    assert {e["kind"] for e in timeline} == {"alert", "action"}


def test_broken_expression_is_reported_not_fatal(world: tuple[ControlPlane, MetricStore, Clock]) -> None:
    cp, store, _ = world
    cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "Broken", {"expr": "sum(("})
    evaluator = AlertEvaluator(cp, QueryEngine(store))
    evaluator.evaluate_once(T0)
    broken = [h for k, h in evaluator.health.items() if k.startswith("rule:")]
    assert broken[0].health == "err"
    assert broken[0].last_error
    stored = cp.alerts.list_rules(SYSTEM, RuleScope("shop"))
    assert stored[0]["health"] == "err"
    assert stored[0]["last_error"]
    effective = {r["alert"]: r for r in cp.alerts.effective_rules("shop", "dev", "orders")}
    assert effective["Broken"]["health"] == "err"
    assert effective["AppErrorRateHigh"]["health"] == "ok"


def test_rules_api_validates_audits_and_scopes(api: Api) -> None:
    http, admin = api.http, api.admin
    assert http.post("/api/v1/projects", json={"name": "shop"}, headers=admin).status_code == 201
    assert (
        http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=admin).status_code
        == 201
    )
    r = http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": score()}, headers=admin
    )
    assert r.status_code == 201
    bad = http.put(
        "/api/v1/projects/shop/alerts/rules/Slow", json={"expr": "x > 1", "for": "soon"}, headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"][0]["path"] == "rule.for"
    assert http.get("/api/v1/projects/shop/alerts/rules", headers=admin).json()["items"] == []
    ok = http.put(
        "/api/v1/projects/shop/alerts/rules/Slow",
        params={"env": "dev", "app": "orders"},
        json={"expr": "x > 1", "for": "1m", "annotations": {"summary": "{{ $labels.app }} slow"}},
        headers=admin,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["scope"] == "shop/dev/orders"
    tuned = http.put(
        "/api/v1/projects/shop/alerts/rules/AppErrorRateHigh", json={"threshold": 0.2}, headers=admin
    )
    assert tuned.json()["kind"] == "override"
    effective = http.get(
        "/api/v1/projects/shop/environments/dev/apps/orders/alert-rules", headers=admin
    ).json()
    by_name = {r["alert"]: r for r in effective["items"]}
    assert by_name["AppErrorRateHigh"]["expr"].endswith("> 0.2")
    assert by_name["Slow"]["for"] == "1m"
    audit = http.get(
        "/api/v1/audit", params={"action": "alert.rule.put", "outcome": "success"}, headers=admin
    ).json()["items"]
    assert len(audit) == 2
    viewer = api.member("shop", "vic", "viewer")
    assert http.get("/api/v1/projects/shop/alerts", headers=viewer).status_code == 200
    assert (
        http.put("/api/v1/projects/shop/alerts/rules/X", json={"expr": "1"}, headers=viewer).status_code
        == 403
    )
    developer = api.member("shop", "dev1", "developer")
    s = http.post(
        "/api/v1/projects/shop/alerts/silences",
        json={"matchers": ['app="orders"'], "duration": "1h", "comment": "deploying"},
        headers=developer,
    )
    assert s.status_code == 201, s.text
    assert s.json()["state"] == "active"
    everything = http.post(
        "/api/v1/projects/shop/alerts/silences",
        json={"matchers": ['app=~".*"'], "duration": "1h"},
        headers=admin,
    )
    assert everything.status_code == 422
    expired = http.delete(f"/api/v1/projects/shop/alerts/silences/{s.json()['id']}", headers=developer)
    assert expired.json()["state"] == "expired"
    assert http.get("/api/v1/projects/shop/alerts/silences", headers=admin).json()["items"] == []
    assert http.get("/api/v1/alerts/rules", headers=developer).status_code == 403
    r = http.put(
        "/api/v1/projects/shop/alerts/receivers/hook",
        json={"kind": "webhook", "config": {"url": "ftp://x"}},
        headers=admin,
    )
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["path"] == "config.url"


def test_parse_errors_are_user_errors(world: tuple[ControlPlane, MetricStore, Clock]) -> None:
    cp, _, _ = world
    with pytest.raises(UserError):
        cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "AppErrorRateHigh", {"threshold": "high"})


def test_restart_action_is_a_rolling_restart_release(world: tuple[ControlPlane, MetricStore, Clock]) -> None:
    cp, store, clock = world
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop", "dev", "orders"), "AnyServerError",
        {"expr": 'yunzhou_router_requests_total{code="5xx"} > 0', "actions": [{"type": "restart"}]},
    )  # fmt: skip
    traffic(store, T0, 10, 1)
    clock.t = T0
    AlertEvaluator(cp, QueryEngine(store)).evaluate_once(T0)
    done = cp.alerts.history(SYSTEM, "shop", kind="action")
    assert done[0]["action"] == "restart"
    assert done[0]["state"] == "done"
    releases = cp.apps.releases("shop", "dev", "orders")
    assert releases[0]["cause"] == "restart: AnyServerError"
    assert cp.apps.rollouts("shop", "dev", "orders")[0]["kind"] == "restart"


def running(cp: ControlPlane, *instance_ids: str, rollout_done: bool = True) -> None:
    """Instances of shop/dev/orders release 1 as the app reconciler records what the runtime reports
    (and, with ``rollout_done``, the deploy's rollout succeeded)."""
    with cp.ctx.db.transaction() as s:
        app_id = s.scalar(select(App.id).where(App.name == "orders"))
        if rollout_done:
            s.execute(update(Rollout).where(Rollout.app_id == app_id).values(state="succeeded"))
        for i in instance_ids:
            s.add(Instance(
                app_id=app_id, instance_id=i, release=1, pid=None, port=0, state="ready", ready=True,
                restarts=0, last_exit=None, reason="", cpu_seconds=0.0, memory_bytes=0, started_at=None,
                observed_at=cp.ctx.clock(),
            ))  # fmt: skip


def restarts(store: MetricStore, t: float, **by_instance: float) -> None:
    store.append_many(
        [("yunzhou_instance_restarts_total", {**LABELS, "instance": i}, n, t) for i, n in by_instance.items()]
    )


def test_restart_action_restarts_only_the_instances_the_alerts_name(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    """Two instances of three restarting: one action for both (one budget per rule and app), a rollout
    that replaces those two and no new release; cool-down and cap as for any action."""
    cp, store, clock = world
    running(cp, "orders-a", "orders-b", "orders-c")
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop", "dev", "orders"), "Restarting",
        {"expr": "yunzhou_instance_restarts_total > 2", "actions": [{"type": "restart"}], "cooldown": "1m",
         "max_actions_per_hour": 2},
    )  # fmt: skip
    evaluator = AlertEvaluator(cp, QueryEngine(store), interval=15)
    for i in range(8):  # 2 minutes firing: acts at 0s and after the 1m cool-down, then the cap holds
        t = T0 + 15 * i
        restarts(store, t, **{"orders-a": 5.0 + i, "orders-b": 3.0 + i, "orders-c": 0.0})
        clock.t = t
        evaluator.evaluate_once(t)
        if i == 0:
            assert len(cp.alerts.active(SYSTEM, "shop")) == 2
            rollout = cp.apps.rollouts("shop", "dev", "orders")[0]
            assert rollout["kind"] == "restart-instances"
            assert rollout["strategy"] == {"instances": ["orders-a", "orders-b"]}
            assert rollout["to_release"] == 1
    done = [a for a in cp.alerts.history(SYSTEM, "shop", kind="action") if a["state"] == "done"]
    assert len(done) == 2  # at 0s and 60s; then 2 an hour is the cap
    assert done[0]["instances"] == ["orders-a", "orders-b"]
    assert [r["number"] for r in cp.apps.releases("shop", "dev", "orders")] == [1]  # no new release
    audit = cp.audit.query(SYSTEM, action="app.restart")
    assert audit[0]["actor"] == "alert:Restarting"
    assert audit[0]["detail"]["instances"] == ["orders-a", "orders-b"]
    assert cp.audit.query(SYSTEM, action="alert.action.restart")[0]["detail"]["instances"] == [
        "orders-a",
        "orders-b",
    ]


def test_restart_of_instances_that_no_longer_run_or_during_a_rollout_is_skipped(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    cp, store, clock = world
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop", "dev", "orders"), "Restarting",
        {"expr": "yunzhou_instance_restarts_total > 2", "actions": [{"type": "restart"}]},
    )  # fmt: skip
    restarts(store, T0, **{"orders-gone": 5.0})
    clock.t = T0
    AlertEvaluator(cp, QueryEngine(store)).evaluate_once(T0)
    skipped = cp.alerts.history(SYSTEM, "shop", kind="action")
    assert [a["state"] for a in skipped] == ["skipped"]
    assert "orders-gone" in skipped[0]["reason"]
    assert cp.apps.rollouts("shop", "dev", "orders")[0]["kind"] == "deploy"  # nothing started

    running(cp, "orders-a", rollout_done=False)  # the deploy's rollout, still pending, replaces instances
    restarts(store, T0 + 15, **{"orders-a": 5.0})
    clock.t = T0 + 15
    AlertEvaluator(cp, QueryEngine(store)).evaluate_once(T0 + 15)
    latest = cp.alerts.history(SYSTEM, "shop", kind="action")[0]
    assert latest["state"] == "skipped"
    assert "is under way" in latest["reason"]


def test_history_is_pruned_by_age(world: tuple[ControlPlane, MetricStore, Clock]) -> None:
    cp, store, clock = world
    cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "AnyTraffic", {"expr": "yunzhou_router_requests_total > 0"})
    traffic(store, T0, 1, 0)
    AlertEvaluator(cp, QueryEngine(store)).evaluate_once(T0)
    assert cp.alerts.history(SYSTEM, "shop")
    clock.t = T0 + 31 * 86400
    assert cp.alerts.prune_history(timedelta(days=30)) > 0
    assert cp.alerts.history(SYSTEM, "shop") == []


def test_environment_knobs_name_themselves() -> None:
    assert alert_interval({"YUNZHOU_ALERT_INTERVAL": "0.5"}) == 0.5
    with pytest.raises(ValueError, match="YUNZHOU_ALERT_INTERVAL"):
        alert_interval({"YUNZHOU_ALERT_INTERVAL": "soon"})
    assert history_days({}) == 30
    with pytest.raises(ValueError, match="YUNZHOU_ALERT_HISTORY_DAYS"):
        history_days({"YUNZHOU_ALERT_HISTORY_DAYS": "0"})


def test_a_projects_rule_never_acts_on_its_namesake_app_for_another_projects_series(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    """On a remote Prometheus bank's rule reads every series; shop/dev/orders failing must not scale
    bank/dev/orders just because the env and app names coincide."""
    cp, store, clock = world
    cp.projects.create(SYSTEM, "bank")
    cp.projects.create_environment(SYSTEM, "bank", "dev", "local", None)
    cp.apps.deploy(SYSTEM, "bank", "dev", score(), None, None)
    cp.alerts.put_rule(
        SYSTEM, RuleScope("bank"), "AnyServerError",
        {"expr": 'yunzhou_router_requests_total{code="5xx"} > 0', "actions": [{"type": "scale", "by": 1}]},
    )  # fmt: skip
    traffic(store, T0, 10, 1)  # shop's series only
    clock.t = T0
    AlertEvaluator(cp, LikeRemotePrometheus(store)).evaluate_once(T0)
    assert cp.apps.get("bank", "dev", "orders")["replicas"] == 1
    assert cp.alerts.history(SYSTEM, "bank", kind="action") == []
    firing = cp.alerts.active(SYSTEM, "bank")
    assert [(a["state"], a["env"], a["app"]) for a in firing] == [("firing", "", "")]
    assert cp.alerts.timeline(SYSTEM, "bank", "dev", "orders") == []


def test_the_hourly_cap_counts_every_action_of_a_pass(world: tuple[ControlPlane, MetricStore, Clock]) -> None:
    """Two actions per firing and a cap of 3 an hour: the second pass may run only one more."""
    cp, store, clock = world
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop", "dev", "orders"), "AnyServerError",
        {"expr": 'yunzhou_router_requests_total{code="5xx"} > 0', "cooldown": "0s",
         "max_actions_per_hour": 3,
         "actions": [{"type": "scale", "by": 1, "max": 10}, {"type": "scale", "by": 1, "max": 10}]},
    )  # fmt: skip
    evaluator = AlertEvaluator(cp, QueryEngine(store))
    for i in range(4):
        t = T0 + 15 * i
        traffic(store, t, 10 + i, 1 + i)
        clock.t = t
        evaluator.evaluate_once(t)
    done = [a for a in cp.alerts.history(SYSTEM, "shop", kind="action") if a["state"] == "done"]
    assert len(done) == 3
    assert cp.apps.get("shop", "dev", "orders")["replicas"] == 4


def test_a_projects_rule_notifies_its_own_receivers_whatever_labels_it_returns(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    """An aggregate without a project label still reaches shop's receivers; bank's rule reading shop's
    series (on a remote Prometheus) reaches bank's receivers, never shop's."""
    cp, store, clock = world
    cp.projects.create(SYSTEM, "bank")
    exprs = {
        "shop": 'sum(yunzhou_router_requests_total{project="shop",code="5xx"}) > 0',  # no project label
        "bank": 'yunzhou_router_requests_total{project="shop",code="5xx"} > 0',  # project="shop" label
    }
    for project, expr in exprs.items():
        cp.alerts.put_receiver(
            SYSTEM, project, "hook", "webhook", {"url": f"http://{project}.test/hook"}, {"group_wait": "0s"}
        )
        cp.alerts.put_rule(SYSTEM, RuleScope(project), f"{project.title()}Errors", {"expr": expr})
    sent: list[tuple[str, dict[str, object]]] = []
    notifier = Notifier(deliver_fn=lambda kind, config, payload: sent.append((config["url"], dict(payload))))
    evaluator = AlertEvaluator(cp, LikeRemotePrometheus(store), notifier=notifier)
    traffic(store, T0, 10, 1)
    clock.t = T0
    evaluator.evaluate_once(T0)
    evaluator.flush(T0)
    got = sorted((url, p["commonLabels"]["alertname"]) for url, p in sent)  # type: ignore[index]
    assert got == [("http://bank.test/hook", "BankErrors"), ("http://shop.test/hook", "ShopErrors")]


def test_history_records_the_evaluations_time_not_when_it_was_written(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    """pending → firing in the history is exactly the rule's `for`, however long the writes took."""
    cp, store, clock = world
    cp.alerts.put_rule(
        SYSTEM, RuleScope("shop"), "AnyServerError",
        {"expr": 'yunzhou_router_requests_total{code="5xx"} > 0', "for": "30s"},
    )  # fmt: skip
    evaluator = AlertEvaluator(cp, QueryEngine(store))
    for t, lag in ((T0, 0.7), (T0 + 30, 0.1)):
        traffic(store, t, 10, 1)
        clock.t = t + lag  # the store's write happens a while after the evaluation instant
        evaluator.evaluate_once(t)
    history = {h["state"]: h["time"] for h in cp.alerts.history(SYSTEM, "shop", kind="alert")}
    held = datetime.fromisoformat(history["firing"]) - datetime.fromisoformat(history["pending"])
    assert held == timedelta(seconds=30)


def test_webhook_urls_are_shown_only_to_who_may_change_receivers(api: Api) -> None:
    """A webhook URL is a credential: viewers and developers see that a receiver exists, not its URL."""
    http, admin = api.http, api.admin
    assert http.post("/api/v1/projects", json={"name": "shop"}, headers=admin).status_code == 201
    url = "https://hooks.example.test/services/T000/B000/s3cr3t"
    put = http.put(
        "/api/v1/projects/shop/alerts/receivers/chat", json={"kind": "webhook", "config": {"url": url}},
        headers=admin,
    )  # fmt: skip
    assert put.status_code == 200, put.text
    for role, shown in (("viewer", "<secret>"), ("developer", "<secret>"), ("maintainer", url)):
        who = api.member("shop", f"u-{role}", role)
        items = http.get("/api/v1/projects/shop/alerts/receivers", headers=who).json()["items"]
        assert [(r["name"], r["config"]["url"]) for r in items] == [("chat", shown)], role


def test_a_projects_rule_reads_only_its_projects_series(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    """On the embedded store every selector of a scoped rule gets the scope's labels: bank's rule cannot
    read shop's request counts (nor their sum), shop's own rule can, an app's rule sees only its app."""
    cp, store, clock = world
    cp.projects.create(SYSTEM, "bank")
    expr = "sum(yunzhou_router_requests_total) > 0"
    cp.alerts.put_rule(SYSTEM, RuleScope("bank"), "Peek", {"expr": expr})
    cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "Own", {"expr": expr})
    cp.apps.deploy(SYSTEM, "shop", "dev", score("other"), None, None)
    cp.alerts.put_rule(SYSTEM, RuleScope("shop", "dev", "other"), "OtherApp", {"expr": expr})
    with pytest.raises(NotFound):  # no such app: refused, nothing stored
        cp.alerts.put_rule(SYSTEM, RuleScope("shop", "dev", "typo"), "Typo", {"expr": expr})
    assert cp.alerts.list_rules(SYSTEM, RuleScope("shop", "dev", "typo")) == []
    traffic(store, T0, 10, 1)
    clock.t = T0
    AlertEvaluator(cp, QueryEngine(store)).evaluate_once(T0)
    assert cp.alerts.active(SYSTEM, "bank") == []
    assert [(a["alertname"], a["value"]) for a in cp.alerts.active(SYSTEM, "shop")] == [("Own", 11.0)]
