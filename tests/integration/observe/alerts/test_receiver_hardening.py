"""Receivers cannot break notifications (issue 14, security items 3 and 11): CR/LF and other control
characters are refused at the API with their field; a webhook to the control plane itself (loopback, its
own addresses) is refused unless the operator allows it, at the API and again at delivery; and one broken
receiver — even one stored before validation was strict — fails alone: recorded, retried with backoff,
visible, while the other projects' receivers (a real webhook server, a real SMTP server) get theirs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import UnixClock, control_plane_with_app
from tests.integration.observe.alerts.receivers import Mailbox, Webhook
from tests.integration.observe.alerts.test_alerts_service import LikeRemotePrometheus
from yunzhou.observe.alerts import AlertEvaluator, DeliveryError, Notifier
from yunzhou.observe.alerts.delivery import deliver
from yunzhou.observe.metrics import MetricStore
from yunzhou.outbound import ALLOW_ENV
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.alerts import RuleScope
from yunzhou.store import Database
from yunzhou.store.models import AlertReceiver

T0 = 1_800_000_000.0
FAST = {"group_wait": "0s", "group_interval": "1h", "repeat_interval": "4h"}


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with Webhook() as w:
        yield w


@pytest.fixture
def world(database: Database, tmp_path: Path) -> Iterator[tuple[ControlPlane, MetricStore, UnixClock]]:
    clock = UnixClock()
    cp = control_plane_with_app(database, tmp_path / "data", clock, None)
    cp.projects.create(SYSTEM, "bank")
    store = MetricStore.open(None)
    yield cp, store, clock
    store.close()


def _errors(store: MetricStore, t: float) -> None:
    labels = {"project": "shop", "env": "dev", "app": "orders", "release": "1", "code": "5xx"}
    store.append_many([("yunzhou_router_requests_total", labels, 1.0, t)])


def _store_receiver(cp: ControlPlane, project: str, name: str, kind: str, config: dict[str, Any]) -> None:
    """Written straight into the store, as a receiver created before the API validated it strictly."""
    with cp.ctx.db.transaction() as s:
        s.add(
            AlertReceiver(
                project=project, name=name, kind=kind, config=config, route=FAST,
                created_at=cp.ctx.clock(), created_by="before-the-fix",
            )
        )  # fmt: skip


def _delivery(cp: ControlPlane, project: str, name: str) -> dict[str, Any]:
    found = [r for r in cp.alerts.list_receivers(SYSTEM, project) if r["name"] == name]
    assert found, f"no receiver {name} in {project}"
    return dict(found[0]["delivery"] or {})


def test_control_characters_in_a_receiver_are_refused_with_their_field_and_nothing_is_written(
    api: Api,
) -> None:
    http, admin = api.http, api.admin
    assert http.post("/api/v1/projects", json={"name": "shop"}, headers=admin).status_code == 201
    mail = {"to": ["oncall@example.test"], "from": "yz@example.test", "smarthost": "mail.example.test:25"}
    attacks = [
        ("webhook", {"url": "https://hooks.example.test/x\r\nX-Injected: 1"}, None, "config.url"),
        ("webhook", {"url": "https://hooks.example.test/x\n"}, None, "config.url"),
        ("email", {**mail, "from": "yz@example.test\r\nBcc: all@example.test"}, None, "config.from"),
        (
            "email",
            {**mail, "to": ["a@example.test", "b@example.test\r\nRCPT TO:<x@y>"]},
            None,
            "config.to[1]",
        ),
        ("email", {**mail, "smarthost": "mail.example.test:25\r\nDATA"}, None, "config.smarthost"),
        ("email", {**mail, "hello": "me\r\nMAIL FROM:<x@y>"}, None, "config.hello"),
        ("email", {**mail, "to": "Oncall <oncall@example.test>"}, None, "config.to"),
        ("email", {**mail, "smarthost": "mail.example.test:70000"}, None, "config.smarthost"),
        (
            "webhook",
            {"url": "https://hooks.example.test/x"},
            {"matchers": ['app="a\nb"']},
            "route.matchers[0]",
        ),
    ]
    for kind, config, route, path in attacks:
        r = http.put(
            "/api/v1/projects/shop/alerts/receivers/chat",
            json={"kind": kind, "config": config, "route": route},
            headers=admin,
        )
        assert r.status_code == 422, (config, r.text)
        problems = r.json()["error"]["problems"]
        assert path in [p["path"] for p in problems], (path, problems)
    assert http.get("/api/v1/projects/shop/alerts/receivers", headers=admin).json()["items"] == []
    assert api.cp.alerts.receivers() == []


def test_webhooks_to_the_control_plane_itself_are_refused_unless_the_operator_allows_them(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    http, admin = api.http, api.admin
    assert http.post("/api/v1/projects", json={"name": "shop"}, headers=admin).status_code == 201
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # this host's address on its network
        s.connect(("192.0.2.1", 9))
        own = s.getsockname()[0]

    def put(url: str) -> Any:
        body = {"kind": "webhook", "config": {"url": url}}
        return http.put("/api/v1/projects/shop/alerts/receivers/hook", json=body, headers=admin)

    for url in (
        "http://127.0.0.1:7070/api/v1/tokens",
        "http://localhost:8080/",
        "http://[::1]:7070/",
        "http://0.0.0.0:7070/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:7070/",
        f"http://{own}:7070/",
    ):
        r = put(url)
        assert r.status_code == 422, (url, r.text)
        problem = r.json()["error"]["problems"][0]
        assert problem["path"] == "config.url"
        assert ALLOW_ENV in problem["message"], problem
    assert api.cp.alerts.receivers() == []
    # a name that does not resolve now is accepted: every delivery checks it again
    assert put("https://hooks.example.test/services/T0/B0/x").status_code == 200
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8")
    assert put("http://127.0.0.1:9093/hook").status_code == 200
    assert put("http://[::1]:9093/hook").status_code == 422  # only what the list names
    monkeypatch.setenv(ALLOW_ENV, "true")
    assert put("http://[::1]:9093/hook").status_code == 200


def test_delivery_checks_the_address_again_and_never_connects_to_the_control_plane(
    world: tuple[ControlPlane, MetricStore, UnixClock], hook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored while allowed (or while its name pointed elsewhere): at delivery the name resolves to
    loopback, so the message is refused, recorded and retried — and the server hears nothing."""
    cp, store, clock = world
    monkeypatch.setenv(ALLOW_ENV, "true")
    cp.alerts.put_receiver(
        SYSTEM, "shop", "hook", "webhook", {"url": f"http://localhost:{hook.port}/h"}, FAST
    )
    monkeypatch.delenv(ALLOW_ENV)
    cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "ShopErrors", {"expr": "yunzhou_router_requests_total > 0"})
    evaluator = AlertEvaluator(cp, LikeRemotePrometheus(store), notifier=Notifier())
    _errors(store, T0)
    clock.t = T0
    evaluator.evaluate_once(T0)
    sent = evaluator.flush(T0)
    assert len(sent) == 1
    assert "loopback" in str(sent[0].error)
    assert hook.bodies == []
    delivery = _delivery(cp, "shop", "hook")
    assert (delivery["state"], delivery["failures"]) == ("failing", 1)
    assert "loopback" in delivery["last_error"]
    assert ALLOW_ENV in delivery["last_error"]
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8,::1")  # the operator allows it: the retry goes through
    evaluator.flush(T0 + 2)
    assert len(hook.bodies) == 1
    assert hook.headers[0]["Host"] == f"localhost:{hook.port}"  # pinned to the checked address, same Host
    assert _delivery(cp, "shop", "hook")["state"] == "ok"


def test_an_smtp_smarthost_on_the_control_plane_itself_is_refused_at_the_api_and_at_delivery(
    api: Api, smtp: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smarthost was not checked: a project could have the control plane talk SMTP to its own loopback
    ports (probing them: refused vs timed out, shown as the delivery's error) or relay mail to anyone
    through a local MTA that trusts localhost."""
    mailbox, smtp_port = smtp
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    http, admin = api.http, api.admin
    assert http.post("/api/v1/projects", json={"name": "shop"}, headers=admin).status_code == 201

    def put(smarthost: str) -> Any:
        config = {"to": ["victim@example.test"], "from": "yz@example.test", "smarthost": smarthost}
        body = {"kind": "email", "config": config, "route": FAST}
        return http.put("/api/v1/projects/shop/alerts/receivers/mail", json=body, headers=admin)

    for smarthost in ("127.0.0.1:7070", "localhost:25", "[::1]:25", "0.0.0.0:25", f"127.0.0.1:{smtp_port}"):
        r = put(smarthost)
        assert r.status_code == 422, (smarthost, r.text)
        problem = r.json()["error"]["problems"][0]
        assert problem["path"] == "config.smarthost"
        assert ALLOW_ENV in problem["message"], problem
    assert api.cp.alerts.receivers() == []

    # stored while the operator allowed it; at delivery it is no longer allowed: nothing reaches the server
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8,::1")
    assert put(f"localhost:{smtp_port}").status_code == 200
    monkeypatch.delenv(ALLOW_ENV)
    payload = {"alerts": [], "status": "firing", "groupLabels": {}, "commonLabels": {}}
    receiver = api.cp.alerts.receivers()[0]
    with pytest.raises(DeliveryError, match="loopback"):
        deliver("email", receiver.config, payload)
    assert mailbox.messages == []
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.0/8,::1")  # pinned to the address it checked, same mail
    deliver("email", receiver.config, payload)
    assert [m["To"] for m in mailbox.messages] == ["victim@example.test"]


def test_one_broken_receiver_fails_alone_recorded_retried_with_backoff_and_visible(
    world: tuple[ControlPlane, MetricStore, UnixClock],
    hook: Webhook,
    smtp: tuple[Mailbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cp, store, clock = world
    mailbox, smtp_port = smtp
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")  # the test's receivers listen on loopback
    # stored before the fix, first in the table: before it, the CR/LF URL aborted the whole flush
    _store_receiver(cp, "shop", "broken", "webhook", {"url": f"http://127.0.0.1:{hook.port}/x\r\nX-A: 1"})
    _store_receiver(
        cp, "bank", "broken-mail", "email",
        {"to": ["a@example.test"], "from": "yz@example.test\r\nBcc: b@example.test",
         "smarthost": f"127.0.0.1:{smtp_port}"},
    )  # fmt: skip
    cp.alerts.put_receiver(SYSTEM, "shop", "hook", "webhook", {"url": hook.url}, FAST)
    mail = {"to": ["oncall@example.test"], "from": "yz@example.test", "smarthost": f"127.0.0.1:{smtp_port}"}
    cp.alerts.put_receiver(SYSTEM, "bank", "mail", "email", mail, FAST)
    for project in ("shop", "bank"):
        rule = {"expr": 'yunzhou_router_requests_total{code="5xx"} > 0'}
        cp.alerts.put_rule(SYSTEM, RuleScope(project), f"{project.title()}Errors", rule)
    evaluator = AlertEvaluator(cp, LikeRemotePrometheus(store), notifier=Notifier())
    _errors(store, T0)
    clock.t = T0
    evaluator.evaluate_once(T0)
    evaluator.flush(T0)

    assert [b["commonLabels"]["alertname"] for b in hook.bodies] == ["ShopErrors"]
    assert [m["Subject"].split(" (")[0] for m in mailbox.messages] == ["[FIRING:1] BankErrors"]
    for project, name in (("shop", "hook"), ("bank", "mail")):
        d = _delivery(cp, project, name)
        assert (d["state"], d["attempts"], d["failures"], d["last_error"]) == ("ok", 1, 0, None), name
    for project, name, field in (("shop", "broken", "config.url"), ("bank", "broken-mail", "config.from")):
        d = _delivery(cp, project, name)
        assert (d["state"], d["attempts"], d["failures"]) == ("failing", 1, 1), (name, d)
        assert "stored receiver is invalid" in d["last_error"]
        assert field in d["last_error"]
        assert d["next_retry_at"] == "2027-01-15T08:00:02Z"  # T0 + 2 s

    # retried with backoff: not before 2 s, then after 4 s more; the healthy ones are not resent
    evaluator.flush(T0 + 1)
    assert _delivery(cp, "shop", "broken")["attempts"] == 1
    evaluator.flush(T0 + 2)
    broken = _delivery(cp, "shop", "broken")
    assert (broken["attempts"], broken["failures"], broken["next_retry_at"]) == (2, 2, "2027-01-15T08:00:06Z")
    evaluator.flush(T0 + 6)
    assert _delivery(cp, "shop", "broken")["failures"] == 3
    assert len(hook.bodies) == 1
    assert len(mailbox.messages) == 1

    # visible through the API
    api = Api(cp)
    with api.http:
        items = api.http.get("/api/v1/projects/shop/alerts/receivers", headers=api.admin).json()["items"]
    shown = {r["name"]: r["delivery"] for r in items}
    assert (shown["broken"]["state"], shown["broken"]["failures"]) == ("failing", 3)
    assert shown["hook"]["state"] == "ok"

    # fixed through the API: its record starts again and the next message goes through
    cp.alerts.put_receiver(SYSTEM, "shop", "broken", "webhook", {"url": hook.url}, FAST)
    assert _delivery(cp, "shop", "broken") == {}
    _errors(store, T0 + 7)
    evaluator.evaluate_once(T0 + 7)
    evaluator.flush(T0 + 7)
    assert [b["receiver"] for b in hook.bodies] == ["hook", "broken"]
    assert _delivery(cp, "shop", "broken")["state"] == "ok"
