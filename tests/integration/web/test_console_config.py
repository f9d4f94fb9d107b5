"""Variables and secrets on the app's Settings tab: who sees and does what, the audited reveal, CSRF, and
a leak check — a canary secret appears on no console page except the maintainer's reveal answer."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import Api
from tests.integration.web.conftest import CSRF_RE, Browser
from yunzhou.store.models import AuditEvent

ENV = "/api/v1/projects/shop/environments/dev"
APP = "/projects/shop/dev/apps/web"
CANARY = "canary-Web-7Kq2-secret-value"
SCORE: dict[str, Any] = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "web"},
    "containers": {
        "web": {
            "image": "python:3.11-slim",
            "command": ["python3", "app.py"],
            "variables": {"DEBUG": "${resources.env.DEBUG}", "API_KEY": "${resources.creds.API_KEY}"},
        }
    },
    "resources": {"env": {"type": "environment"}, "creds": {"type": "secret"}},
}


def seed(api: Api) -> None:
    for method, path, body in (
        ("POST", "/api/v1/projects", {"name": "shop"}),
        ("POST", "/api/v1/projects/shop/environments", {"name": "dev"}),
        ("PATCH", ENV + "/config", {"set": {"DEBUG": "1"}}),
        ("PUT", ENV + "/secrets/API_KEY", {"value": CANARY}),
        ("POST", ENV + "/deployments", {"score": SCORE}),
    ):
        r = api.http.request(method, path, json=body, headers=api.admin)
        assert r.status_code in (200, 201), r.text


def login_as(browser: Browser, api: Api, principal: str, role: str) -> None:
    browser.login(api.member("shop", principal, role)["Authorization"].removeprefix("Bearer "))


def reveals(api: Api) -> list[AuditEvent]:
    with api.cp.ctx.db.transaction() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "secret.reveal")))
        s.expunge_all()
        return rows


def test_viewer_sees_names_only_and_forged_posts_are_refused(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "vera", "viewer")
    page = browser.http.get(APP + "/settings").text
    assert "API_KEY" in page
    assert "DEBUG" in page
    for control in ("config-form", "secret-form", "reveal-link", "/config/unset", 'type="password"'):
        assert control not in page, control
    assert CANARY not in page
    r = browser.post(APP + "/secrets/reveal", {"name": "API_KEY", "level": "env"})
    assert r.status_code == 403
    assert CANARY not in r.text
    r = browser.post(APP + "/secrets", {"name": "API_KEY", "value": "evil", "level": "env"})
    assert r.status_code == 403
    assert [(e.actor, e.outcome) for e in reveals(web_api)] == [("vera", "denied")]


def test_developer_sets_variables_and_secrets_but_cannot_reveal(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "dev", "developer")
    page = browser.http.get(APP + "/settings").text
    assert 'id="secret-form"' in page
    assert re.search(r'name="value" type="password"', page)
    assert "reveal-link" not in page
    r = browser.post(APP + "/secrets", {"name": "API_KEY", "value": CANARY + "-v2", "level": "app"})
    assert r.status_code == 303, r.text
    assert CANARY not in r.headers["location"]
    secrets = web_api.http.get(ENV + "/secrets?app=web", headers=web_api.admin).json()["items"]
    assert {(s["name"], s["scope"], s["updated_by"]) for s in secrets} >= {("API_KEY", "app", "dev")}
    page = browser.http.get(r.headers["location"]).text
    assert "done-notice" in page
    assert CANARY not in page
    r = browser.post(APP + "/config", {"key": "DEBUG", "value": "0", "level": "app"})
    assert r.status_code == 303, r.text
    assert web_api.http.get(ENV + "/config?app=web", headers=web_api.admin).json()["vars"] == {"DEBUG": "0"}
    r = browser.post(APP + "/config/unset", {"key": "DEBUG", "level": "app"})
    assert r.status_code == 303, r.text
    assert web_api.http.get(ENV + "/config?app=web", headers=web_api.admin).json()["vars"] == {}
    r = browser.post(APP + "/config", {"key": "9bad", "value": "x", "level": "env"})
    assert r.status_code == 422
    assert 'id="v-key-error"' in r.text
    r = browser.post(APP + "/secrets", {"name": "NEW_KEY", "value": "", "level": "env"})
    assert r.status_code == 422
    assert 'id="s-name-error"' in r.text
    r = browser.post(APP + "/secrets/reveal", {"name": "API_KEY", "level": "env"})
    assert r.status_code == 403
    assert CANARY not in r.text


def test_maintainer_reveals_once_without_caching(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "mia", "maintainer")
    page = browser.http.get(APP + "/settings").text
    link = re.search(r'class="button reveal-link" href="([^"]+)"', page)
    assert link, page
    confirm = browser.http.get(link.group(1).replace("&amp;", "&"))
    assert confirm.status_code == 200
    assert 'id="reveal-form"' in confirm.text
    assert CANARY not in confirm.text
    assert reveals(web_api) == [], "opening the confirmation reveals nothing"
    r = browser.post(APP + "/secrets/reveal", {"name": "API_KEY", "level": "env"})
    assert r.status_code == 200, r.text
    assert CANARY in r.text
    assert r.headers["cache-control"] == "no-store"
    rows = reveals(web_api)
    assert [(e.actor, e.target, e.outcome, e.detail["version"]) for e in rows] == [
        ("mia", "shop/dev:API_KEY", "success", 1)
    ]
    assert CANARY not in str(rows[0].detail)
    zh = browser.http.get(APP + "/settings", headers={"Accept-Language": "zh-CN"}).text
    assert "显示" in zh
    assert "密钥" in zh


def test_reveal_without_the_csrf_token_is_refused(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "mia", "maintainer")
    r = browser.http.post(APP + "/secrets/reveal", data={"name": "API_KEY", "level": "env"})
    assert r.status_code == 403
    r = browser.http.post(
        APP + "/secrets/reveal", data={"name": "API_KEY", "level": "env", "csrf_token": "0" * 64}
    )
    assert r.status_code == 403
    assert CANARY not in r.text
    r = browser.http.post(APP + "/secrets", data={"name": "API_KEY", "value": "x", "level": "env"})
    assert r.status_code == 403
    assert reveals(web_api) == []


def _console_pages(browser: Browser) -> list[httpx.Response]:
    paths = [
        "/projects", "/projects/shop", "/projects/shop/dev", "/projects/shop/dev/deploy",
        "/projects/shop/dev/deploy?app=web", "/audit", APP, APP + "/overview", APP + "/overview/live",
        APP + "/instances", APP + "/instances/live", APP + "/releases", APP + "/releases?a=1&b=2",
        APP + "/releases/1", APP + "/releases/2", APP + "/rollback?to=1", APP + "/logs",
        APP + "/logs/more?after_id=0", APP + "/metrics", APP + "/settings",
        APP + "/secrets/reveal?name=API_KEY&level=env", APP + "/secrets/unset?name=API_KEY&level=env",
    ]  # fmt: skip
    return [browser.http.get(path, follow_redirects=True) for path in paths]


def test_a_canary_secret_appears_on_no_page_but_the_reveal(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    # a second version, set through the console, so releases carry a config change as well
    login_as(browser, web_api, "dev", "developer")
    assert (
        browser.post(APP + "/secrets", {"name": "API_KEY", "value": CANARY, "level": "app"}).status_code
        == 303
    )
    pages = _console_pages(browser)
    assert all(p.status_code == 200 for p in pages), [(p.url, p.status_code) for p in pages]
    assert len(pages) == 22
    assert CSRF_RE.search(pages[-2].text)
    leaks = [str(p.url) for p in pages if CANARY in p.text or CANARY in str(p.headers)]
    assert leaks == []
    denied = browser.post(APP + "/secrets/reveal", {"name": "API_KEY", "level": "app"})
    assert denied.status_code == 403
    assert CANARY not in denied.text
    other = Browser(web_api)
    with other.http:
        login_as(other, web_api, "olga", "owner")
        assert all(CANARY not in p.text for p in _console_pages(other))
        revealed = other.post(APP + "/secrets/reveal", {"name": "API_KEY", "level": "app"})
        assert revealed.status_code == 200
        assert CANARY in revealed.text


def test_developer_unsets_a_secret_after_confirming(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    r = web_api.http.put(ENV + "/secrets/OLD_TOKEN", json={"value": "x"}, headers=web_api.admin)
    assert r.status_code == 200, r.text
    login_as(browser, web_api, "dev", "developer")
    page = browser.http.get(APP + "/settings").text
    link = re.search(r'class="button unset-secret-link" href="([^"]+OLD_TOKEN[^"]*)"', page)
    assert link, page
    confirm = browser.http.get(link.group(1).replace("&amp;", "&"))
    assert confirm.status_code == 200
    assert 'id="unset-secret-form"' in confirm.text
    names = {s["name"] for s in web_api.http.get(ENV + "/secrets", headers=web_api.admin).json()["items"]}
    assert "OLD_TOKEN" in names, "opening the confirmation changes nothing"
    r = browser.http.post(APP + "/secrets/unset", data={"name": "OLD_TOKEN", "level": "env"})
    assert r.status_code == 403, "no CSRF token, no unset"
    r = browser.post(APP + "/secrets/unset", {"name": "OLD_TOKEN", "level": "env"})
    assert r.status_code == 303, r.text
    assert "done=secret_unset" in r.headers["location"]
    items = web_api.http.get(ENV + "/secrets", headers=web_api.admin).json()["items"]
    assert [s for s in items if s["name"] == "OLD_TOKEN" and s.get("version")] == []
    # a secret a deployed app uses: the API's refusal is shown on the confirmation page
    r = browser.post(APP + "/secrets/unset", {"name": "API_KEY", "level": "env"})
    assert r.status_code == 409
    assert 'id="unset-refused"' in r.text
    assert 'id="unset-secret-form"' in r.text


def test_viewer_gets_no_unset_and_a_forged_unset_is_refused(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "vera", "viewer")
    assert "unset-secret-link" not in browser.http.get(APP + "/settings").text
    r = browser.post(APP + "/secrets/unset", {"name": "API_KEY", "level": "env"})
    assert r.status_code == 403
    items = web_api.http.get(ENV + "/secrets", headers=web_api.admin).json()["items"]
    assert [s["version"] for s in items if s["name"] == "API_KEY"] == [1]
