"""``yunzhou alerts receivers list`` shows how each receiver's notifications went (issue 14, item 3)."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from tests.unit.cli.conftest import CLEAN_ENV, URL
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig

RECEIVERS = [
    {"name": "chat", "kind": "webhook", "config": {"url": "https://hooks.example.test/x"},
     "route": {"matchers": [], "group_by": ["alertname"]},
     "delivery": {"state": "failing", "attempts": 4, "failures": 3,
                  "last_error": "webhook to hooks.example.test: answered 500",
                  "last_attempt_at": "2027-01-15T08:00:06Z", "last_success_at": None,
                  "next_retry_at": "2027-01-15T08:00:14Z"}},
    {"name": "mail", "kind": "email", "config": {"to": ["a@example.test"]}, "route": {}, "delivery": None},
    {"name": "ok", "kind": "webhook", "config": {"url": "https://b.example.test/"}, "route": {},
     "delivery": {"state": "ok", "attempts": 1, "failures": 0, "last_error": None}},
]  # fmt: skip


def test_receivers_list_shows_failing_deliveries_with_error_and_next_retry() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/projects/shop/alerts/receivers"
        return httpx.Response(200, json={"items": RECEIVERS})

    state = CliState(transport=httpx.MockTransport(answer))
    state.config = ClientConfig(url=URL, token="t", auth_source="YUNZHOU_TOKEN")
    result = CliRunner().invoke(app, ["alerts", "receivers", "list", "shop"], obj=state, env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "DELIVERY" in rows["NAME"]
    assert (
        rows["chat"]
        .rstrip()
        .endswith("failing (3×): webhook to hooks.example.test: answered 500; retry at 2027-01-15T08:00:14Z")
    )
    assert rows["mail"].rstrip().endswith("-")
    assert rows["ok"].rstrip().endswith("ok")


def test_silence_create_prints_its_end_to_the_second_as_docs_alerts_md_shows() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/projects/shop/alerts/silences"
        matchers = [{"name": "app", "value": "web", "isRegex": False, "isEqual": True}]
        silence = {"id": 4, "ends_at": "2026-11-25T18:00:00.464178Z", "matchers": matchers}
        return httpx.Response(201, json=silence)

    state = CliState(transport=httpx.MockTransport(answer))
    state.config = ClientConfig(url=URL, token="t", auth_source="YUNZHOU_TOKEN")
    args = ["alerts", "silence", "create", "shop", "-m", 'app="web"', "-d", "2h", "-c", "migrating"]
    result = CliRunner().invoke(app, args, obj=state, env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    assert 'Silence 4 until 2026-11-25T18:00:00Z: app="web"' in result.output
