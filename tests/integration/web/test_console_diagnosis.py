"""The console's app Overview shows why the app does not serve: the failing instance, its last probe
result and last stderr lines (the InstanceHealth condition's diagnosis), in English and Chinese."""

from __future__ import annotations

from sqlalchemy import update

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from tests.integration.web.test_console import seed
from yunzhou.store.models import App

DIAGNOSED = {
    "type": "InstanceHealth", "status": "False", "reason": "ReadinessProbeFailing",
    "message": "instance web-r1-abc (release 1) is not ready; readiness GET /healthz → HTTP 503",
    "last_transition": "2026-01-01T12:00:00Z",
    "diagnosis": {
        "instance": "web-r1-abc", "release": 1, "state": "running", "restarts": 2, "last_exit": "exit 1",
        "stderr": ["warning: <cache> cold", "boom: missing DATABASE_URL"],
        "probe": {"probe": "readiness", "type": "http", "target": "GET /healthz", "ok": False,
                  "result": "HTTP 503", "since": "2026-01-01T12:00:00Z"},
    },
}  # fmt: skip


def test_the_overview_shows_the_diagnosis(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    live = "/projects/shop/dev/apps/web/overview/live"
    assert 'id="diagnosis"' not in browser.http.get(live).text  # nothing wrong reported: no card
    with web_api.cp.ctx.db.transaction() as s:
        s.execute(update(App).where(App.name == "web").values(conditions=[DIAGNOSED]))
    page = browser.http.get(live).text
    assert 'id="diagnosis"' in page
    assert "Why it does not serve" in page
    assert "readiness GET /healthz → HTTP 503" in page
    assert "boom: missing DATABASE_URL" in page
    assert "warning: &lt;cache&gt; cold" in page  # the app's text is escaped
    assert "exit 1" in page
    zh = browser.http.get(live, headers={"Accept-Language": "zh"}).text
    assert "为何未能提供服务" in zh
    assert "最近的标准错误输出" in zh
    full = browser.http.get("/projects/shop/dev/apps/web/overview").text
    assert 'id="diagnosis-stderr"' in full
