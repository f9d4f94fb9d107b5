"""The Logs tab's filters over a real log store, with the CLI's parity: ``--where`` field filters on JSON
lines narrow the rows (and the live tail keeps them), ``--until`` bounds them and stops following, and a
filter the API cannot read is shown next to its field."""

from __future__ import annotations

import re
import time

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.observe import LogRecord, LogStore
from yunzhou.web.i18n import translate

LOGS = "/projects/shop/dev/apps/web/logs"


def setup(api: Api) -> LogStore:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    }
    for path, body in (
        ("/api/v1/projects", {"name": "shop"}),
        ("/api/v1/projects/shop/environments", {"name": "dev"}),
        ("/api/v1/projects/shop/environments/dev/deployments", {"score": score}),
    ):
        assert api.http.post(path, json=body, headers=api.admin).status_code == 201
    store: LogStore = api.http.app.state.log_store
    now = time.time()
    for age, line in (
        (3600, '{"level": "info", "msg": "started", "user_id": 7}'),
        (600, '{"level": "error", "msg": "payment failed", "user_id": 42}'),
        (300, '{"level": "error", "msg": "timeout", "user_id": 7}'),
        (60, '{"level": "info", "msg": "order placed", "user_id": 42}'),
        (30, "plain text line"),
    ):
        store.append(
            LogRecord(
                time=now - age, app="shop/dev/web", instance="web-1", stream="stdout", line=line, release=1
            )
        )
    assert store.flush()
    return store


def shown(html: str) -> list[str]:
    return [
        m for m in ("started", "payment failed", "timeout", "order placed", "plain text line") if m in html
    ]


def test_where_narrows_the_rows_and_until_bounds_them(web_api: Api, browser: Browser) -> None:
    store = setup(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(LOGS).text
    assert shown(page) == ["started", "payment failed", "timeout", "order placed", "plain text line"]
    assert '<label for="l-where">' in page
    assert '<label for="l-until">' in page

    page = browser.http.get(LOGS, params={"where": "level=error"}).text
    assert shown(page) == ["payment failed", "timeout"]
    page = browser.http.get(LOGS, params={"where": "level=error user_id=42"}).text  # all must hold
    assert shown(page) == ["payment failed"]
    assert 'id="l-where" name="where" value="level=error user_id=42"' in page
    page = browser.http.get(LOGS, params={"where": 'msg="order placed"'}).text  # quoted: a value with a space
    assert shown(page) == ["order placed"]

    # the live tail asks with the same field filter, and only matching new lines come back
    match = re.search(
        r'hx-get="([^"]*/logs/more\?[^"]*)"', browser.http.get(LOGS, params={"where": "user_id=42"}).text
    )
    assert match, "no live tail poller"
    poll_url = match.group(1).replace("&amp;", "&")
    assert "where=user_id%3D42" in poll_url
    for line in (
        '{"level": "warn", "user_id": 42, "msg": "retrying"}',
        '{"level": "warn", "user_id": 9, "msg": "other"}',
    ):
        store.append(
            LogRecord(
                time=time.time(), app="shop/dev/web", instance="web-1", stream="stdout", line=line, release=1
            )
        )
    assert store.flush()
    more = browser.http.get(poll_url).text
    assert "retrying" in more
    assert "other" not in more

    # until: only lines before it, and the page stops following
    page = browser.http.get(LOGS, params={"until": "2m", "where": "level=error"}).text
    assert shown(page) == ["payment failed", "timeout"]
    page = browser.http.get(LOGS, params={"until": "20m"}).text
    assert shown(page) == ["started"]
    assert "logs/more" not in page
    assert translate("en", "logs.paused") in page


def test_a_filter_the_api_cannot_read_is_shown_next_to_its_field(web_api: Api, browser: Browser) -> None:
    setup(web_api)
    browser.login(web_api.admin_token)
    r = browser.http.get(LOGS, params={"where": "level"})
    assert r.status_code == 422
    assert 'id="l-where-error"' in r.text
    assert 'aria-describedby="l-where-hint l-where-error" aria-invalid="true"' in r.text
    assert shown(r.text) == []
    r = browser.http.get(LOGS, params={"until": "yesterday-ish"})
    assert r.status_code == 422
    assert 'id="l-until-error"' in r.text

    browser.http.cookies.set("yz_lang", "zh-CN")
    assert translate("zh-CN", "logs.where") in browser.http.get(LOGS).text
