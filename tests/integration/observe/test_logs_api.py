"""GET /api/v1/projects/{project}/environments/{env}/apps/{app}/logs over a real log store."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Api
from yunzhou.domain.access import Permission
from yunzhou.observe import LogRecord, LogStore

LOGS = "/api/v1/projects/shop/environments/dev/apps/orders/logs"
APP = "shop/dev/orders"


def add(
    store: LogStore, line: str, *, age: float = 0.0, instance: str = "orders-1", stream: str = "stdout"
) -> None:
    store.append(
        LogRecord(time=time.time() - age, app=APP, instance=instance, stream=stream, line=line, release=1)
    )


def get(api: Api, headers: dict[str, str] | None = None, **params: Any) -> Any:
    r = api.http.get(LOGS, params=params, headers=api.admin if headers is None else headers)
    assert r.status_code == 200, r.text
    return r.json()


def lines(body: Any) -> list[str]:
    return [item["line"] for item in body["items"]]


@pytest.fixture
def filled(shop: Api, log_store: LogStore) -> Api:
    add(log_store, "started on port 8080", age=3600)
    add(log_store, '{"level": "warn", "msg": "slow query"}', age=500, instance="orders-2")
    add(log_store, "Traceback: boom", age=30, stream="stderr")
    add(log_store, "GET / 200 5B 1ms", age=5, instance="orders-2", stream="access")
    add(log_store, "other app", age=1)
    log_store.append(
        LogRecord(time=time.time(), app="shop/dev/inventory", instance="i-1", stream="stdout", line="x")
    )
    assert log_store.flush()
    return shop


def test_records_come_back_oldest_first_with_a_cursor(filled: Api) -> None:
    body = get(filled)
    assert lines(body) == [
        "started on port 8080",
        '{"level": "warn", "msg": "slow query"}',
        "Traceback: boom",
        "GET / 200 5B 1ms",
        "other app",
    ]
    first = body["items"][0]
    assert set(first) == {
        "id",
        "time",
        "project",
        "env",
        "app",
        "instance",
        "release",
        "stream",
        "line",
        "fields",
    }
    assert (first["project"], first["env"], first["app"], first["release"]) == ("shop", "dev", "orders", 1)
    assert first["time"].endswith("Z")
    assert body["items"][1]["fields"] == {"level": "warn", "msg": "slow query"}
    assert body["next_after_id"] >= body["items"][-1]["id"]


def test_filters(filled: Api) -> None:
    assert lines(get(filled, since="10m")) == [
        '{"level": "warn", "msg": "slow query"}',
        "Traceback: boom",
        "GET / 200 5B 1ms",
        "other app",
    ]
    assert lines(get(filled, since="1m", until="3s")) == ["Traceback: boom", "GET / 200 5B 1ms"]
    assert lines(get(filled, grep="BOOM")) == ["Traceback: boom"]
    assert lines(get(filled, grep='"msg"')) == ['{"level": "warn", "msg": "slow query"}']
    assert lines(get(filled, instance="orders-2")) == [
        '{"level": "warn", "msg": "slow query"}',
        "GET / 200 5B 1ms",
    ]
    assert lines(get(filled, stream="access")) == ["GET / 200 5B 1ms"]
    assert lines(get(filled, limit=2)) == ["GET / 200 5B 1ms", "other app"]
    assert get(filled, grep="nothing like this")["items"] == []


def test_since_accepts_rfc3339(filled: Api) -> None:
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    assert lines(get(filled, since=moment)) == ["Traceback: boom", "GET / 200 5B 1ms", "other app"]


def test_following_with_after_id_returns_only_what_is_new(filled: Api, log_store: LogStore) -> None:
    cursor = get(filled)["next_after_id"]
    assert get(filled, after_id=cursor)["items"] == []
    add(log_store, "new line")
    assert log_store.flush()
    body = get(filled, after_id=cursor)
    assert lines(body) == ["new line"]
    assert get(filled, after_id=body["next_after_id"])["items"] == []


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", ["10 minutes", "yesterday", "2024-05-01T10:00:00", "-5m"])
def test_a_time_that_cannot_be_read_is_a_422_naming_its_field(shop: Api, field: str, value: str) -> None:
    r = shop.http.get(LOGS, params={field: value}, headers=shop.admin)
    assert r.status_code == 422, r.text
    [problem] = r.json()["error"]["problems"]
    assert problem["path"] == f"query.{field}"
    assert "10m" in problem["message"]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 100_000}, "query.limit"),
        ({"after_id": -1}, "query.after_id"),
        ({"stream": "stdin"}, "query.stream"),
        ({"grep": "x" * 1001}, "query.grep"),
    ],
)
def test_other_invalid_parameters_are_422(shop: Api, params: dict[str, Any], path: str) -> None:
    r = shop.http.get(LOGS, params=params, headers=shop.admin)
    assert r.status_code == 422, r.text
    assert [p["path"] for p in r.json()["error"]["problems"]] == [path]


def test_an_unknown_app_or_environment_is_404(shop: Api) -> None:
    for path in (
        "/api/v1/projects/shop/environments/dev/apps/nope/logs",
        "/api/v1/projects/shop/environments/prod/apps/orders/logs",
        "/api/v1/projects/nope/environments/dev/apps/orders/logs",
    ):
        r = shop.http.get(path, headers=shop.admin)
        assert r.status_code == 404, (path, r.text)


def test_callers_need_read_access_to_the_project(filled: Api) -> None:
    assert filled.http.get(LOGS).status_code == 401
    outsider = filled.token_for("mallory")
    r = filled.http.get(LOGS, headers=outsider)
    assert r.status_code == 404  # the project's existence is not revealed
    assert r.json()["error"]["message"] == "project 'shop' not found"
    viewer = filled.member("shop", "vera", "viewer", scopes=("read",))
    assert len(get(filled, headers=viewer)["items"]) == 5


def test_without_a_log_store_the_server_says_so(shop: Api) -> None:
    del shop.http.app.state.log_store  # type: ignore[attr-defined]
    r = shop.http.get(LOGS, headers=shop.admin)
    assert r.status_code == 503
    assert "log store" in r.json()["error"]["message"]
    assert r.headers["Retry-After"] == "5"


def test_the_route_is_published_with_its_permission(shop: Api) -> None:
    operation = shop.http.get("/openapi.json").json()["paths"][
        "/api/v1/projects/{project}/environments/{env}/apps/{app}/logs"
    ]["get"]
    assert operation["operationId"] == "logs_list"
    # Permission members with equal values are aliases, so APP_READ is published under its first name
    assert Permission[operation["x-yunzhou-permission"]] is Permission.APP_READ


EXPORT = LOGS + "/export"


def test_where_filters_json_fields(filled: Api, log_store: LogStore) -> None:
    add(log_store, '{"level": "error", "user_id": 42, "msg": "card declined"}')
    add(log_store, '{"level": "error", "user_id": 7, "msg": "timeout"}')
    add(log_store, '{"level": "info", "user_id": 42, "msg": "ok"}')
    assert log_store.flush()
    assert lines(get(filled, where="level=error user_id=42")) == [
        '{"level": "error", "user_id": 42, "msg": "card declined"}'
    ]
    r = filled.http.get(
        LOGS, params=[("where", "level=error"), ("where", "user_id>10")], headers=filled.admin
    )
    assert [item["fields"]["msg"] for item in r.json()["items"]] == ["card declined"]
    assert len(get(filled, where="user_id>=7")["items"]) == 3
    assert lines(get(filled, where='msg="slow query"')) == ['{"level": "warn", "msg": "slow query"}']


@pytest.mark.parametrize("value", ["level", "=x", "a b=c"])
def test_a_where_that_cannot_be_read_is_a_422(shop: Api, value: str) -> None:
    for path in (LOGS, EXPORT):
        r = shop.http.get(path, params={"where": value}, headers=shop.admin)
        assert r.status_code == 422, r.text
        [problem] = r.json()["error"]["problems"]
        assert problem["path"] == "query.where"
        assert "KEY OP VALUE" in problem["message"]


def test_export_streams_every_matching_record_as_json_lines(filled: Api, log_store: LogStore) -> None:
    for i in range(12_000):  # more than one page of the store's export
        add(log_store, f'{{"n": {i}, "level": "{"error" if i % 1000 == 0 else "info"}"}}')
    assert log_store.flush()
    r = filled.http.get(EXPORT, headers=filled.admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in r.text.splitlines()]
    assert len(records) == 5 + 12_000
    assert records[0]["line"] == "started on port 8080"
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert records[-1]["fields"] == {"n": 11_999, "level": "info"}
    assert records[-1]["time"].endswith("Z")
    assert records[-1]["app"] == "orders"
    errors = filled.http.get(EXPORT, params={"where": "level=error", "since": "1h"}, headers=filled.admin)
    assert [json.loads(line)["fields"]["n"] for line in errors.text.splitlines()] == list(
        range(0, 12_000, 1000)
    )
    assert filled.http.get(EXPORT, params={"grep": "nothing like it"}, headers=filled.admin).text == ""


def test_export_is_404_for_an_unknown_app_and_needs_read_access(filled: Api) -> None:
    r = filled.http.get("/api/v1/projects/shop/environments/dev/apps/nope/logs/export", headers=filled.admin)
    assert r.status_code == 404
    assert filled.http.get(EXPORT).status_code == 401
    assert filled.http.get(EXPORT, headers=filled.token_for("mallory")).status_code == 404
