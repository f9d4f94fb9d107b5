"""Console pages and actions over the in-process API: sessions, CSRF, roles, forms, i18n."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.store.models import AlertEvent

SCORE: dict[str, Any] = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "web"},
    "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
}


def seed(api: Api) -> None:
    for method, path, body in (
        ("POST", "/api/v1/projects", {"name": "shop"}),
        ("POST", "/api/v1/projects/shop/environments", {"name": "dev"}),
        ("POST", "/api/v1/projects/shop/environments/dev/deployments", {"score": SCORE}),
    ):
        r = api.http.request(method, path, json=body, headers=api.admin)
        assert r.status_code == 201, r.text


def test_login_required_and_bad_token(browser: Browser) -> None:
    r = browser.http.get("/projects")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2Fprojects")
    r = browser.http.post("/login", data={"token": "yzt_nope", "csrf_token": browser.csrf()})
    assert r.status_code == 401
    assert "not valid" in r.text


def test_session_cookie_is_http_only_and_sealed(browser: Browser, web_api: Api) -> None:
    r = browser.http.post(
        "/login", data={"token": web_api.admin_token, "csrf_token": browser.csrf(), "next": "/audit"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/audit"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("yz_session="))
    assert "httponly" in cookie.lower()
    assert web_api.admin_token not in cookie
    assert browser.http.get("/projects").status_code == 200


def test_open_redirect_is_refused(browser: Browser, web_api: Api) -> None:
    r = browser.http.post(
        "/login",
        data={"token": web_api.admin_token, "csrf_token": browser.csrf(), "next": "//evil.example/x"},
    )
    assert r.headers["location"] == "/projects"


def test_forms_without_csrf_are_refused(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    r = browser.http.post("/projects/shop/dev/apps/web/scale", data={"replicas": "3"})
    assert r.status_code == 403
    r = browser.http.post("/projects/shop/dev/apps/web/scale", data={"replicas": "3", "csrf_token": "f" * 64})
    assert r.status_code == 403
    app = web_api.http.get("/api/v1/projects/shop/environments/dev/apps/web", headers=web_api.admin).json()
    assert app["replicas"] == 1


def test_pages_render_for_an_admin(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    for path, expected in (
        ("/projects", "shop"),
        ("/projects/shop", "local"),
        ("/projects/shop/dev", "Deploy an app"),
        ("/projects/shop/dev/apps/web/overview", "Current rollout"),
        ("/projects/shop/dev/apps/web/instances", "No instances reported yet"),
        ("/projects/shop/dev/apps/web/releases", "deploy"),
        ("/projects/shop/dev/apps/web/logs", "No log lines match yet"),
        ("/projects/shop/dev/apps/web/metrics", "Instances now"),
        ("/projects/shop/dev/apps/web/settings", "Save routes"),
        ("/projects/shop/dev/apps/web/overview/live", "Conditions"),
        ("/projects/shop/dev/deploy", "What will be submitted"),
        ("/audit?outcome=success", "app.deploy"),
    ):
        r = browser.http.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert expected in r.text, path


def test_scale_rollback_and_diff(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    r = browser.post("/projects/shop/dev/apps/web/scale", {"replicas": "3"})
    assert r.status_code == 303
    app = web_api.http.get("/api/v1/projects/shop/environments/dev/apps/web", headers=web_api.admin).json()
    assert app["replicas"] == 3
    r = browser.post(
        "/projects/shop/dev/apps/web/routes", {"host": "shop.example.test", "path": "/", "port": ""}
    )
    assert r.status_code == 303, r.text
    r = browser.http.get("/projects/shop/dev/apps/web/releases?a=1&b=2")
    assert "d-add" in r.text
    assert "shop.example.test" in r.text
    assert "Roll back to 1" in r.text
    assert browser.http.get("/projects/shop/dev/apps/web/rollback?to=1").status_code == 200
    r = browser.post("/projects/shop/dev/apps/web/rollback", {"to": "1"})
    assert r.status_code == 303
    releases = web_api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/web/releases", headers=web_api.admin
    ).json()["items"]
    assert releases[0]["cause"] == "rollback to 1"
    superscript = browser.post("/projects/shop/dev/apps/web/scale", {"replicas": "²"})  # isdigit(), not int()
    assert superscript.status_code == 422
    mangled = browser.post("/projects/shop/dev/apps/web/rollback", {"to": "²"})
    assert mangled.status_code == 422
    assert "<code>to</code>" in mangled.text
    assert "Enter a whole number." in mangled.text
    after = web_api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/web/releases", headers=web_api.admin
    ).json()["items"]
    assert len(after) == len(releases)  # refused: nothing written


def test_viewer_sees_no_controls_and_a_forged_post_is_refused(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    viewer = web_api.member("shop", "vera", "viewer")["Authorization"].removeprefix("Bearer ")
    browser.login(viewer)
    page = browser.http.get("/projects/shop/dev").text
    assert "deploy-button" not in page
    overview = browser.http.get("/projects/shop/dev/apps/web/overview").text
    assert "scale-form" not in overview
    assert "update-button" not in overview
    assert "Roll back to" not in browser.http.get("/projects/shop/dev/apps/web/releases").text
    for confirm in ("rollback?to=1", "secrets/unset?name=TOKEN", "secrets/reveal?name=TOKEN"):
        page = browser.http.get(f"/projects/shop/dev/apps/web/{confirm}")  # reached by URL, not by a button
        assert page.status_code == 200, confirm
        assert 'method="post"' not in page.text.split("<main", 1)[1], confirm
        assert 'id="not-allowed"' in page.text, confirm
    r = browser.post("/projects/shop/dev/apps/web/scale", {"replicas": "5"})
    assert r.status_code == 403
    r = browser.post("/projects/shop/dev/deploy", {"mode": "form", "name": "evil", "image": "x"})
    assert r.status_code == 403
    app = web_api.http.get("/api/v1/projects/shop/environments/dev/apps/web", headers=web_api.admin).json()
    assert app["replicas"] == 1
    denied = web_api.http.get("/api/v1/audit?outcome=denied&actor=vera", headers=web_api.admin).json()
    assert denied["items"], "the API audits the refused calls under the viewer's own name"


def test_deploy_form_creates_an_app_and_shows_field_errors(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    form = {
        "mode": "form", "name": "api", "image": "python:3.11-slim", "command": "python3 app.py",
        "port": "8080", "probe_path": "/healthz", "replicas": "2", "variables": "GREETING=hi\n",
    }  # fmt: skip
    preview = browser.post("/projects/shop/dev/deploy/preview", form)
    assert "readinessProbe" in preview.text
    assert "GREETING: hi" in preview.text
    r = browser.post("/projects/shop/dev/deploy", form)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/projects/shop/dev/apps/api/overview")
    app = web_api.http.get("/api/v1/projects/shop/environments/dev/apps/api", headers=web_api.admin).json()
    assert app["replicas"] == 2
    # local problems and the API's problems both land next to their field
    r = browser.post("/projects/shop/dev/deploy", {**form, "port": "http", "variables": "nope"})
    assert r.status_code == 422
    assert re.search(r'id="f-port-error"[^>]*>must be a whole number', r.text)
    assert 'id="f-variables-error"' in r.text
    r = browser.post("/projects/shop/dev/deploy", {**form, "name": "Bad_Name", "image": ""})
    assert r.status_code == 422
    assert 'id="f-name-error"' in r.text


def test_score_mode_reports_yaml_errors_at_the_field(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    r = browser.post("/projects/shop/dev/deploy", {"mode": "score", "score": "a: [1,"})
    assert r.status_code == 422
    assert 'id="f-score-error"' in r.text
    score = "apiVersion: score.dev/v1b1\nmetadata: {name: pasted}\ncontainers:\n  web: {image: busybox}\n"
    r = browser.post(
        "/projects/shop/dev/deploy", {"mode": "score", "score": score, "settings": "replicas: 2"}
    )
    assert r.status_code == 303


def test_language_from_accept_language_then_cookie(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    r = browser.http.get("/projects/shop/dev", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "部署应用" in r.text
    assert 'lang="zh-CN"' in r.text
    r = browser.http.get("/lang/en?next=/projects/shop/dev")
    assert r.headers["location"] == "/projects/shop/dev"
    r = browser.http.get("/projects/shop/dev", headers={"Accept-Language": "zh-CN"})
    assert "Deploy an app" in r.text


def test_logout_ends_the_session(browser: Browser, web_api: Api) -> None:
    browser.login(web_api.admin_token)
    assert browser.post("/logout", {}).status_code == 303
    assert browser.http.get("/projects").status_code == 303


def test_overview_shows_the_apps_events(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    with web_api.cp.ctx.db.transaction() as s:
        where = {"project": "shop", "env": "dev", "app": "web", "rule_key": "HighErrorRate@shop/dev/web"}
        s.add_all([
            AlertEvent(time=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), kind="alert", alertname="HighErrorRate",
                       state="firing", release=1, **where,
                       detail={"annotations": {"summary": "errors above 5% for 2m"}, "labels": {}}),
            AlertEvent(time=datetime(2026, 1, 1, 12, 1, tzinfo=UTC), kind="action", alertname="HighErrorRate",
                       state="skipped", release=1, **where,
                       detail={"action": "rollback", "reason": "no earlier healthy release", "labels": {}}),
        ])  # fmt: skip
    browser.login(web_api.admin_token)
    page = browser.http.get("/projects/shop/dev/apps/web/overview").text
    assert 'id="events-table"' in page
    assert "errors above 5% for 2m" in page
    assert "no earlier healthy release" in page
    assert page.index('data-kind="action"') < page.index('data-kind="alert"'), "newest first"
    live = browser.http.get("/projects/shop/dev/apps/web/overview/events").text
    assert "rollback (because of HighErrorRate)" in live
    zh = browser.http.get(
        "/projects/shop/dev/apps/web/overview/events", headers={"Accept-Language": "zh"}
    ).text
    assert "告警触发" in zh
    assert "已跳过" in zh


def test_overview_without_events(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    assert 'id="events-empty"' in browser.http.get("/projects/shop/dev/apps/web/overview").text
