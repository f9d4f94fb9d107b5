"""Logout ends the session on the server: a copy of the cookie taken before logging out (a replay) gets
the login page, not the console (issue 14, security item 11)."""

from __future__ import annotations

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.web.session import SESSION_COOKIE, SessionBox


def _session_cookie(browser: Browser) -> str:
    value = browser.http.cookies.get(SESSION_COOKIE)
    assert value
    return value


def test_a_cookie_replayed_after_logout_gets_the_login_page(browser: Browser, web_api: Api) -> None:
    browser.login(web_api.admin_token)
    stolen = _session_cookie(browser)
    assert browser.http.get("/projects").status_code == 200
    assert browser.post("/logout", {}).status_code == 303

    browser.http.cookies.set(SESSION_COOKIE, stolen)  # the attacker's copy, sent after logout
    r = browser.http.get("/projects")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


def test_logout_ends_only_that_session(browser: Browser, web_api: Api) -> None:
    box: SessionBox = web_api.http.app.state.console.box
    other = box.seal(web_api.admin_token, "admin")  # the same user signed in in another browser
    browser.login(web_api.admin_token)
    assert browser.post("/logout", {}).status_code == 303
    assert box.open(other) is not None
    assert web_api.http.get("/api/v1/whoami", headers=web_api.admin).status_code == 200


def test_a_read_token_session_ends_at_logout_too(browser: Browser, web_api: Api) -> None:
    reader = web_api.token_for("rita", ("read",))["Authorization"].removeprefix("Bearer ")
    browser.login(reader)
    stolen = _session_cookie(browser)
    assert browser.http.get("/projects").status_code == 200
    assert browser.post("/logout", {}).status_code == 303
    browser.http.cookies.set(SESSION_COOKIE, stolen)
    r = browser.http.get("/projects")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")
