"""`yunzhou logs` driven through the real client against the in-process API and a real log store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig
from yunzhou.observe import LogRecord, LogStore

APP = "shop/dev/orders"
T0 = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z

Run = Callable[..., Result]


def in_process(api: Api) -> httpx.MockTransport:
    """Hand the client's requests to the in-process API."""

    def handle(request: httpx.Request) -> httpx.Response:
        r = api.http.request(
            request.method,
            request.url.raw_path.decode(),
            headers=dict(request.headers),
            content=request.content,
        )
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    return httpx.MockTransport(handle)


@pytest.fixture
def run(shop: Api, tmp_path: Path) -> Callable[..., Result]:
    def invoke(*args: str, sleep: Callable[[float], None] = lambda _: None) -> Result:
        state = CliState(transport=in_process(shop), sleep=sleep)
        state.config = ClientConfig(
            url="http://yunzhou.test", token=shop.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
        )
        result = CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def add(
    store: LogStore, line: str, *, offset: float = 0.0, instance: str = "orders-1", stream: str = "stdout"
) -> None:
    store.append(LogRecord(time=T0 + offset, app=APP, instance=instance, stream=stream, line=line, release=1))


@pytest.fixture
def logged(log_store: LogStore) -> LogStore:
    add(log_store, "listening on :8080")
    add(log_store, "[bold]not markup[/] Traceback", offset=1, instance="orders-2", stream="stderr")
    add(log_store, "GET /items 200 12B 0.8ms", offset=2, stream="access")
    assert log_store.flush()
    return log_store


def test_lines_are_time_instance_stream_line(run: Run, logged: LogStore) -> None:
    result = run("logs", APP)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2023-11-14T22:13:20.250Z orders-1 stdout listening on :8080",
        "2023-11-14T22:13:21.250Z orders-2 stderr [bold]not markup[/] Traceback",
        "2023-11-14T22:13:22.250Z orders-1 access GET /items 200 12B 0.8ms",
    ]


def test_filters_are_passed_on(run: Run, logged: LogStore) -> None:
    assert run("logs", APP, "--grep", "traceback").stdout.count("\n") == 1
    assert "orders-2 stderr" in run("logs", APP, "--instance", "orders-2").stdout
    assert run("logs", APP, "--stream", "access").stdout.endswith("GET /items 200 12B 0.8ms\n")
    assert run("logs", APP, "-n", "1").stdout.count("\n") == 1
    since_then = run("logs", APP, "--since", "2023-11-14T22:13:21Z")
    assert since_then.stdout.count("\n") == 2


def test_nothing_matching_is_said_on_stderr(run: Run, logged: LogStore) -> None:
    result = run("logs", APP, "--grep", "zzz")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No log lines for shop/dev/orders match" in result.stderr


def test_json_output_is_one_object_per_line(run: Run, logged: LogStore) -> None:
    result = run("logs", APP, "-o", "json")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == [
        "listening on :8080",
        "[bold]not markup[/] Traceback",
        "GET /items 200 12B 0.8ms",
    ]
    assert records[0]["time"] == "2023-11-14T22:13:20.250000Z"
    assert records[0]["instance"] == "orders-1"


def test_follow_prints_new_lines_until_ctrl_c(run: Run, logged: LogStore) -> None:
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            add(logged, "arrived later", offset=10)
            assert logged.flush()
        elif len(polls) == 3:
            raise KeyboardInterrupt

    result = run("logs", APP, "-f", "--interval", "0.5", "-o", "json", sleep=sleep)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["line"] for line in result.stdout.splitlines()] == [
        "listening on :8080",
        "[bold]not markup[/] Traceback",
        "GET /items 200 12B 0.8ms",
        "arrived later",
    ]
    assert polls == [0.5, 0.5, 0.5]


def test_an_unknown_app_is_an_error_with_a_hint(run: Run) -> None:
    result = run("logs", "shop/dev/nope")
    assert result.exit_code == 1
    assert "Error:" in result.stderr
    assert "yunzhou apps shop/dev" in result.stderr


def test_a_since_that_cannot_be_read_names_the_field(run: Run) -> None:
    result = run("logs", APP, "--since", "yesterday")
    assert result.exit_code == 1
    assert "query.since" in result.stderr


def test_a_malformed_address_is_a_usage_error(run: Run) -> None:
    assert run("logs", "shop/orders").exit_code == 2


def test_where_filters_json_lines(run: Run, logged: LogStore) -> None:
    add(logged, '{"level": "error", "user_id": 42, "msg": "card declined"}', offset=3)
    add(logged, '{"level": "error", "user_id": 7, "msg": "timeout"}', offset=4)
    assert logged.flush()
    result = run("logs", APP, "--where", "level=error", "--where", "user_id=42", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["fields"]["msg"] for line in result.stdout.splitlines()] == ["card declined"]
    assert run("logs", APP, "-w", "level=error user_id>=7").stdout.count("\n") == 2
    bad = run("logs", APP, "--where", "level")
    assert bad.exit_code == 1
    assert "query.where" in bad.stderr


def test_until_bounds_the_lines(run: Run, logged: LogStore) -> None:
    result = run("logs", APP, "--until", "2023-11-14T22:13:21Z")
    assert result.stdout.splitlines() == ["2023-11-14T22:13:20.250Z orders-1 stdout listening on :8080"]


def test_export_prints_every_matching_line_as_json(run: Run, logged: LogStore, tmp_path: Path) -> None:
    for i in range(300):
        add(logged, f'{{"n": {i}}}', offset=10 + i)
    assert logged.flush()
    result = run("logs", APP, "--export")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 303  # not limited by -n
    assert records[0]["line"] == "listening on :8080"
    assert records[-1]["fields"] == {"n": 299}
    assert set(records[0]) >= {"id", "time", "project", "env", "app", "instance", "stream", "line", "fields"}
    only = run("logs", APP, "--export", "--where", "n>=298", "--stream", "stdout")
    assert [json.loads(line)["fields"]["n"] for line in only.stdout.splitlines()] == [298, 299]


def test_export_and_follow_do_not_go_together(run: Run) -> None:
    result = run("logs", APP, "--export", "-f")
    assert result.exit_code == 2
    assert "--export" in result.stderr
