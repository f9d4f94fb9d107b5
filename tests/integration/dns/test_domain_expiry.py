"""Registered-domain expiry against a real RDAP peer: an HTTP server written here that serves RFC 9083
domain objects (``GET /domain/<name>``, ``application/rdap+json``) the way registries' RDAP services do,
including a redirect as rdap.org gives. Through it: the RDAP client's answers and errors, the checker
recording each lookup in the store, the metric, and the DomainExpiringSoon platform rule firing."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UnixClock
from yunzhou.client import YunzhouClient
from yunzhou.domain.errors import NotFound, PermanentError, TemporaryError
from yunzhou.names.rdap import RdapClient, RdapSettings
from yunzhou.observe.alerts import AlertEvaluator
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.collect import ScrapeLoop
from yunzhou.observe.metrics.collect_db import StateReader
from yunzhou.observe.metrics.collect_domains import DomainExpiryCollector
from yunzhou.reconcile.domain_expiry import DomainExpiryChecker
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.watched_domains import DomainWatchService
from yunzhou.store import Database
from yunzhou.testing.polling import wait_until
from yunzhou.testing.server import ControlPlaneProcess, free_port

DAY = 86400.0


class Registry:
    """What the RDAP server answers: domain → (status, body); ``redirect`` names served by a 302."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[str] = []

    def domain(self, name: str, expires: dt.datetime) -> None:
        self.answers[name] = (200, domain_object(name, expires))


def domain_object(name: str, expires: dt.datetime) -> dict[str, Any]:
    """An RFC 9083 §5.3 domain object as registries send it (abridged: no entities or notices)."""
    return {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "domain",
        "ldhName": name.upper(),
        "status": ["client transfer prohibited"],
        "events": [
            {"eventAction": "registration", "eventDate": "2001-02-03T04:05:06Z"},
            {"eventAction": "expiration", "eventDate": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
        ],
    }


@pytest.fixture
def rdap() -> Iterator[tuple[str, Registry]]:
    registry = Registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.requests.append(self.path)
            if self.path.startswith("/bootstrap/domain/"):  # as rdap.org: 302 to the registry's service
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/bootstrap"))
                self.end_headers()
                return
            name = self.path.removeprefix("/domain/")
            status, body = registry.answers.get(name, (404, {"errorCode": 404, "title": "Not Found"}))
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/rdap+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", registry
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_rdap_client_reads_the_expiration_and_translates_errors(rdap: tuple[str, Registry]) -> None:
    url, registry = rdap
    expires = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
    registry.domain("example.com", expires)
    registry.answers["broken.com"] = (503, {"errorCode": 503})
    registry.answers["private.com"] = (200, {"objectClassName": "domain", "events": []})
    registry.answers["junk.com"] = (200, b"<html>not json</html>")
    client = RdapClient(RdapSettings(url))

    assert client.expiration("example.com") == expires
    assert RdapClient(RdapSettings(url + "/bootstrap/")).expiration("example.com") == expires  # redirect
    with pytest.raises(NotFound, match=r"has no domain nowhere\.com"):
        client.expiration("nowhere.com")
    with pytest.raises(TemporaryError, match=r"answered 503"):
        client.expiration("broken.com")
    with pytest.raises(PermanentError, match=r"eventAction 'expiration'"):
        client.expiration("private.com")
    with pytest.raises(PermanentError, match=r"not JSON"):
        client.expiration("junk.com")
    with pytest.raises(TemporaryError, match=r"unreachable"):
        RdapClient(RdapSettings(f"http://127.0.0.1:{free_port()}")).expiration("example.com")
    client.close()


def test_new_domain_is_looked_up_at_once_and_recorded_with_errors(
    database: Database, tmp_path: Path, rdap: tuple[str, Registry]
) -> None:
    url, registry = rdap
    expires = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
    registry.domain("example.com", expires)
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data")
    service = DomainWatchService(cp.ctx)
    checker = DomainExpiryChecker(
        service, RdapClient(RdapSettings(url)).expiration, cp.ctx.clock, every=3600, poll=0.05
    ).start()
    try:
        service.add(SYSTEM, "Example.COM.")
        service.add(SYSTEM, "nowhere.com")
        wait_until(
            "both looked up", lambda: all(d["checked_at"] for d in service.list_all(SYSTEM)), timeout=30
        )
    finally:
        checker.stop()

    by_name = {d["name"]: d for d in service.list_all(SYSTEM)}
    assert by_name["example.com"]["expires_at"] == "2027-03-01T12:00:00Z"
    assert by_name["example.com"]["error"] is None
    assert by_name["nowhere.com"]["expires_at"] is None
    assert "has no domain nowhere.com" in by_name["nowhere.com"]["error"]
    assert StateReader(database).domain_expiries() == [("example.com", expires.timestamp())]

    # the registry goes down: the error is recorded, the last known expiry kept (the alert keeps its series)
    registry.answers["example.com"] = (503, {"errorCode": 503})
    lookup = RdapClient(RdapSettings(url)).expiration
    in_two_hours = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    later = DomainExpiryChecker(service, lookup, lambda: in_two_hours, every=3600)
    assert later.run_once() == 2  # both due again an interval later
    row = {d["name"]: d for d in service.list_all(SYSTEM)}["example.com"]
    assert (row["expires_at"], "answered 503" in row["error"]) == ("2027-03-01T12:00:00Z", True)
    assert (
        DomainExpiryChecker(service, RdapClient(RdapSettings(url)).expiration, cp.ctx.clock).run_once() == 0
    )


def test_domain_expiring_within_30_days_fires_the_default_alert(
    database: Database, tmp_path: Path, rdap: tuple[str, Registry]
) -> None:
    url, registry = rdap
    now = time.time()
    registry.domain("soon.com", dt.datetime.fromtimestamp(now + 10 * DAY, dt.UTC))
    registry.domain("later.com", dt.datetime.fromtimestamp(now + 90 * DAY, dt.UTC))
    clock = UnixClock(now)
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data", clock=clock)
    service = DomainWatchService(cp.ctx)
    for name in ("soon.com", "later.com"):
        service.add(SYSTEM, name)
    DomainExpiryChecker(service, RdapClient(RdapSettings(url)).expiration, clock).run_once()
    store = MetricStore.open(None)
    scrape = ScrapeLoop(store, [DomainExpiryCollector(StateReader(database).domain_expiries)], interval=15.0)
    evaluator = AlertEvaluator(cp, QueryEngine(store), interval=15.0)
    firing: list[dict[str, Any]] = []

    def evaluated_and_firing() -> bool:
        clock.t = time.time()
        scrape.run_once(clock.t)
        evaluator.evaluate_once(clock.t)
        firing[:] = [a for a in cp.alerts.active(SYSTEM, "") if a["alertname"] == "DomainExpiringSoon"]
        return any(a["state"] == "firing" for a in firing)

    try:
        wait_until("DomainExpiringSoon firing", evaluated_and_firing, timeout=60)
    finally:
        store.close()

    [alert] = firing  # soon.com only
    assert alert["labels"]["domain"] == "soon.com"
    assert 9.9 * DAY < alert["value"] < 10 * DAY
    assert alert["annotations"]["summary"].startswith("the registration of soon.com expires in ")


def test_yunzhou_server_looks_up_a_new_domain_and_exports_its_expiry(
    tmp_path: Path, rdap: tuple[str, Registry]
) -> None:
    """The wiring as users run it: `yunzhou server` with YUNZHOU_RDAP_URL, a domain added by the CLI's
    client, its expiry looked up by the server's checker and queryable as the metric."""
    url, registry = rdap
    expires = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
    registry.domain("example.com", expires)
    env = {"YUNZHOU_RDAP_URL": url, "YUNZHOU_SCRAPE_INTERVAL": "0.5"}
    with (
        ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True, startup_timeout=60) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.watch_domain("example.com")

        def exported() -> bool:
            result = client.metrics_query('yunzhou_domain_expiry_timestamp_seconds{domain="example.com"}')
            return [float(r["value"][1]) for r in result["result"]] == [expires.timestamp()]

        wait_until("the expiry exported", exported, timeout=60)
        [item] = client.list_watched_domains()
        assert (item["expires_at"], item["error"]) == ("2027-03-01T12:00:00Z", None)
        assert registry.requests == ["/domain/example.com"]  # once: the next lookup is hours away
