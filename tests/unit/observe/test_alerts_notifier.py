"""The notifier's Alertmanager semantics with an injected clock and a recording delivery function."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from yunzhou.domain.alert_routing import parse_route
from yunzhou.domain.alerts import parse_matchers
from yunzhou.observe.alerts import DeliveryError, NotifiedAlert, Notifier, webhook_payload
from yunzhou.observe.alerts.delivery import email_message
from yunzhou.services.alerts import Receiver

ROUTE = {"group_wait": "10s", "group_interval": "1m", "repeat_interval": "1h"}


class Outbox:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, kind: str, config: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        if self.fail:
            raise DeliveryError("connection refused")
        self.sent.append(dict(payload))


def receiver(route: dict[str, Any] = ROUTE, project: str = "shop", **config: Any) -> Receiver:
    return Receiver(1, project, "hook", "webhook", {"url": "http://x", **config}, parse_route(route))


def alert(app: str = "web", ends_at: float | None = None, name: str = "E") -> NotifiedAlert:
    labels = {"alertname": name, "project": "shop", "env": "dev", "app": app}
    return NotifiedAlert(f"fp-{name}-{app}", labels, {"summary": f"{app} fails"}, 0.0, ends_at)


def test_group_wait_then_one_message_then_repeat_interval() -> None:
    out = Outbox()
    n, r = Notifier("http://yz", out), [receiver()]
    n.observe(r, alert(), now=0)
    assert n.flush(5, []) == []  # still inside group_wait
    assert len(n.flush(10, [])) == 1
    payload = out.sent[0]
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["groupLabels"] == {"alertname": "E", "project": "shop", "env": "dev", "app": "web"}
    for t in (70, 130, 1900):  # unchanged: de-duplicated until the repeat interval
        n.observe(r, alert(), now=t)
        n.flush(t, [])
    assert len(out.sent) == 1
    n.observe(r, alert(), now=3620)
    n.flush(3620, [])
    assert len(out.sent) == 2


def test_resolved_is_sent_once_and_the_group_ends() -> None:
    out = Outbox()
    n, r = Notifier(deliver_fn=out), [receiver()]
    n.observe(r, alert(), 0)
    n.flush(10, [])
    n.observe(r, alert(ends_at=50), 50)
    n.flush(70, [])
    assert [p["status"] for p in out.sent] == ["firing", "resolved"]
    assert out.sent[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    n.flush(200, [])
    assert len(out.sent) == 2


def test_grouping_by_labels_and_routing_by_matchers_and_project() -> None:
    out = Outbox()
    n = Notifier(deliver_fn=out)
    only_web = [receiver({**ROUTE, "group_by": ["alertname"], "matchers": ['app=~"web|api"']})]
    for app in ("web", "api", "db"):
        n.observe(only_web, alert(app), 0)
    n.observe([receiver(project="other")], alert("web"), 0)
    n.flush(10, [])
    assert len(out.sent) == 1
    assert sorted(a["labels"]["app"] for a in out.sent[0]["alerts"]) == ["api", "web"]
    assert out.sent[0]["commonLabels"] == {"alertname": "E", "project": "shop", "env": "dev"}


def test_silenced_alerts_are_never_sent_firing_or_resolved() -> None:
    out = Outbox()
    n, r = Notifier(deliver_fn=out), [receiver()]
    silence = [("shop", parse_matchers(['app="web"']))]
    n.observe(r, alert(), 0)
    n.flush(10, silence)
    n.observe(r, alert(ends_at=30), 30)
    n.flush(70, silence)
    assert out.sent == []


def test_failed_delivery_is_retried_with_backoff_until_it_goes_through() -> None:
    out = Outbox()
    n, r = Notifier(deliver_fn=out), [receiver()]
    n.observe(r, alert(), 0)
    out.fail = True
    failed = n.flush(10, [])
    assert [(m.error, m.next_retry) for m in failed] == [("connection refused", 12.0)]
    assert n.flush(11, []) == []  # not before its backoff
    assert [m.next_retry for m in n.flush(12, [])] == [16.0]  # 2 s, then 4 s, 8 s … at most 5 min
    assert [m.next_retry for m in n.flush(16, [])] == [24.0]
    out.fail = False
    assert [m.error for m in n.flush(24, [])] == [None]
    assert len(out.sent) == 1
    assert n.flush(30, []) == []  # delivered: back to the group's own intervals


def test_whatever_one_receiver_raises_the_others_are_sent() -> None:
    """A receiver whose delivery raises something unexpected (a stored value from before validation) or
    whose stored configuration is known to be invalid fails alone, recorded with its reason."""
    out = Outbox()

    def deliver(kind: str, config: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        if config["url"] == "bad":
            raise ValueError("Invalid non-printable ASCII character in URL")
        out(kind, config, payload)

    route = parse_route({"group_wait": "0s"})
    receivers = [
        Receiver(1, "shop", "bad", "webhook", {"url": "bad"}, route),
        Receiver(
            2, "shop", "stored-bad", "webhook", {"url": "http://x"}, route, "config.url: holds a control"
        ),
        Receiver(3, "shop", "good", "webhook", {"url": "http://x"}, route),
    ]
    n = Notifier(deliver_fn=deliver)
    n.observe(receivers, alert(), 0)
    sent = {m.receiver: m.error for m in n.flush(0, [])}
    assert sent == {
        "bad": "ValueError: Invalid non-printable ASCII character in URL",
        "stored-bad": "config.url: holds a control",
        "good": None,
    }
    assert [p["receiver"] for p in out.sent] == ["good"]


def test_send_resolved_false_keeps_quiet_on_resolution() -> None:
    out = Outbox()
    n, r = Notifier(deliver_fn=out), [receiver(send_resolved=False)]
    n.observe(r, alert(), 0)
    n.flush(10, [])
    n.observe(r, alert(ends_at=20), 20)
    n.flush(70, [])
    assert [p["status"] for p in out.sent] == ["firing"]


def test_email_subject_and_body() -> None:
    out = Outbox()
    n, r = Notifier("http://yz", out), [receiver()]
    n.observe(r, alert(), 0)
    n.flush(10, [])
    msg = email_message({"from": "a@x.test", "to": ["b@x.test", "c@x.test"]}, out.sent[0])
    assert msg["Subject"] == "[FIRING:1] E (app=web env=dev project=shop)"
    assert msg["To"] == "b@x.test, c@x.test"
    assert "web fails" in msg.get_content()


def test_an_alert_no_longer_observed_resolves_once_stale_and_is_not_repeated() -> None:
    """Its rule was deleted (or its app removed): nobody observes it again. As Alertmanager does with an
    alert Prometheus stopped sending, it resolves when its endsAt passes, instead of repeating forever."""
    out = Outbox()
    n, r = Notifier(deliver_fn=out, stale_after=240), [receiver()]
    n.observe(r, alert(), 0)
    for t in range(10, 7300, 60):
        n.flush(t, [])
    assert [p["status"] for p in out.sent] == ["firing", "resolved"]
    assert out.sent[1]["alerts"][0]["endsAt"] == "1970-01-01T00:04:00.000Z"


def test_an_alert_still_observed_never_goes_stale() -> None:
    out = Outbox()
    n, r = Notifier(deliver_fn=out, stale_after=240), [receiver()]
    for t in range(0, 3700, 60):
        n.observe(r, alert(), t)
        n.flush(t + 10, [])
    assert [p["status"] for p in out.sent] == ["firing", "firing"]  # the first and the repeat after 1h


def test_max_alerts_truncates_and_the_summary_fields_describe_what_is_carried() -> None:
    """Alertmanager's webhook notifier truncates first, then computes status and the common labels and
    annotations from the alerts it sends."""
    alerts = [alert("web", ends_at=5), alert("api"), alert("db")]
    payload = webhook_payload("hook", "{}:{}", {"alertname": "E"}, alerts, "", max_alerts=1)
    assert payload["truncatedAlerts"] == 2
    assert [a["labels"]["app"] for a in payload["alerts"]] == ["web"]
    assert payload["status"] == "resolved"
    assert payload["commonLabels"]["app"] == "web"
    assert payload["commonAnnotations"] == {"summary": "web fails"}


def test_group_labels_hold_only_the_labels_the_alerts_have() -> None:
    """A project-wide aggregate has no env or app label: Alertmanager leaves them out of groupLabels."""
    out = Outbox()
    n, r = Notifier(deliver_fn=out), [receiver()]
    labels = {"alertname": "ShopDown", "project": "shop"}
    n.observe(r, NotifiedAlert("fp", labels, {}, 0.0, None), 0)
    n.flush(10, [])
    assert out.sent[0]["groupLabels"] == {"alertname": "ShopDown", "project": "shop"}
    assert out.sent[0]["groupKey"].endswith(':{alertname="ShopDown",project="shop"}')


def test_a_label_value_with_a_line_break_still_makes_a_one_line_subject() -> None:
    labels = {"alertname": "E", "project": "shop", "env": "dev", "app": "web\nBcc: x@evil.test"}
    payload = webhook_payload("mail", "{}:{}", labels, [NotifiedAlert("fp", labels, {}, 0.0, None)], "")
    msg = email_message({"from": "a@x.test", "to": ["b@x.test"]}, payload)
    assert msg["Subject"] == "[FIRING:1] E (app=web Bcc: x@evil.test env=dev project=shop)"
    assert msg["Bcc"] is None


def test_a_route_change_rebuilds_the_groups_instead_of_resolving_firing_alerts() -> None:
    out = Outbox()
    n = Notifier(deliver_fn=out, stale_after=240)
    before = [receiver()]
    n.observe(before, alert(), 0)
    n.flush(10, [])
    after = [receiver({**ROUTE, "group_by": ["alertname"]})]  # the same receiver, edited
    for t in range(60, 600, 60):
        n.sync_receivers(after)
        n.observe(after, alert(), t)
        n.flush(t, [])
    assert [p["status"] for p in out.sent] == ["firing", "firing"]  # never a false "resolved"
    assert out.sent[1]["groupLabels"] == {"alertname": "E"}


def test_a_receiver_that_never_finishes_fails_alone_within_the_deadline() -> None:
    """A webhook server trickling its answer a byte at a time never trips a per-read timeout: it held the
    notifier's thread, so no receiver of any project got another message. Now each message has a deadline:
    the stuck one fails (recorded, retried later, never twice at once) while the others are sent."""
    release = threading.Event()
    calls: list[str] = []
    out = Outbox()

    def deliver(kind: str, config: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
        calls.append(str(config["url"]))
        if config["url"] == "http://stuck":
            release.wait(60)
        else:
            out(kind, config, payload)

    stuck = Receiver(1, "evil", "hook", "webhook", {"url": "http://stuck"}, parse_route(ROUTE))
    fine = Receiver(2, "shop", "hook", "webhook", {"url": "http://x"}, parse_route(ROUTE))
    n = Notifier(deliver_fn=deliver, deadline=0.5)
    evil = NotifiedAlert("fp-evil", {"alertname": "E", "project": "evil"}, {}, 0.0, None)
    try:
        n.observe([stuck, fine], evil, 0)
        n.observe([stuck, fine], alert(), 0)
        started = time.monotonic()
        sent = n.flush(10, [])
        assert time.monotonic() - started < 10
        assert {m.receiver_id: m.error is None for m in sent} == {1: False, 2: True}
        assert "did not finish within 0.5 s" in str(next(m.error for m in sent if m.receiver_id == 1))
        assert len(out.sent) == 1
        n.observe([stuck, fine], evil, 20)
        assert n.flush(20, []) == []  # the stuck delivery still runs: no second one on top of it
        assert calls.count("http://stuck") == 1
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while any(t.name == "yunzhou-alert-send" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [m.receiver_id for m in n.flush(30, [])] == [1]  # retried once the first attempt ended
