"""Management pages: projects, environments, members and API tokens — who sees which controls, what a
forged form gets, CSRF, field-level errors, and the token secret shown once."""

from __future__ import annotations

import re

from tests.conftest import Api
from tests.integration.web.conftest import Browser

MEMBERS = "/projects/shop/-/members"


def seed(api: Api) -> None:
    for method, path, body in (
        ("POST", "/api/v1/projects", {"name": "shop"}),
        ("POST", "/api/v1/projects/shop/environments", {"name": "dev"}),
    ):
        r = api.http.request(method, path, json=body, headers=api.admin)
        assert r.status_code in (200, 201), r.text


def login_as(browser: Browser, api: Api, principal: str, role: str) -> None:
    browser.login(api.member("shop", principal, role)["Authorization"].removeprefix("Bearer "))


def members(api: Api) -> dict[str, str]:
    r = api.http.get("/api/v1/projects/shop/members", headers=api.admin)
    return {m["principal"]: m["role"] for m in r.json()["items"]}


def test_owner_creates_project_and_environment_and_manages_members(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "olga", "owner")
    assert 'id="project-form"' in browser.http.get("/projects").text
    r = browser.post("/projects", {"name": "blog", "display_name": "Blog"})
    assert r.status_code == 303
    assert r.headers["location"] == "/projects/blog?done=project"

    page = browser.http.get("/projects/shop").text
    assert 'id="env-form"' in page
    assert 'value="local"' in page
    r = browser.post("/projects/shop/-/environments", {"name": "staging", "target": "local", "namespace": ""})
    assert r.status_code == 303, r.text
    page = browser.http.get("/projects/shop?done=env").text
    assert "staging" in page
    assert 'id="done-notice"' in page

    page = browser.http.get(MEMBERS).text
    assert 'id="member-form"' in page
    assert "olga" in page
    r = browser.post(MEMBERS, {"principal": "dana", "role": "developer"})
    assert r.status_code == 303, r.text
    assert members(web_api)["dana"] == "developer"
    assert "change-role" in browser.http.get(MEMBERS).text
    r = browser.post(MEMBERS, {"principal": "dana", "role": "maintainer"})  # a row's role form
    assert r.status_code == 303
    assert members(web_api)["dana"] == "maintainer"
    r = browser.post(MEMBERS + "/remove", {"principal": "dana"})
    assert r.status_code == 303, r.text
    assert "dana" not in members(web_api)
    # the last owner cannot be removed: the API's conflict is shown on the page, nothing changes
    for other in [p for p, role in members(web_api).items() if role == "owner" and p != "olga"]:
        assert browser.post(MEMBERS + "/remove", {"principal": other}).status_code == 303
    r = browser.post(MEMBERS + "/remove", {"principal": "olga"})
    assert r.status_code == 409
    assert "owner" in r.text
    assert members(web_api)["olga"] == "owner"


def test_field_errors_are_next_to_their_fields(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "olga", "owner")
    r = browser.post("/projects", {"name": "Not A Label"})
    assert r.status_code == 422
    assert re.search(r'id="f-name"[^>]*aria-invalid="true"', r.text)
    assert 'id="f-name-error"' in r.text
    r = browser.post("/projects", {"name": "shop"})  # exists: the conflict is shown at the name
    assert r.status_code == 409
    assert 'id="f-name-error"' in r.text
    r = browser.post("/projects/shop/-/environments", {"name": "qa", "target": "cluster:nowhere"})
    assert r.status_code == 422
    assert 'id="f-target-error"' in r.text
    assert "nowhere" in r.text
    r = browser.post(MEMBERS, {"principal": "has space", "role": "developer"})
    assert r.status_code == 422
    assert 'id="f-principal-error"' in r.text
    r = browser.post(MEMBERS, {"principal": "x", "role": "emperor"})
    assert r.status_code == 422
    assert 'id="f-role-error"' in r.text
    r = browser.post("/tokens", {"name": "", "expires_days": "0"})
    assert r.status_code == 422
    for field in ("name", "scopes", "expires_days"):
        assert f'id="f-{field}-error"' in r.text, field


def test_viewer_sees_no_mutating_controls_and_forged_posts_are_refused(
    browser: Browser, web_api: Api
) -> None:
    seed(web_api)
    login_as(browser, web_api, "vera", "viewer")
    page = browser.http.get("/projects/shop").text
    assert "env-form" not in page
    page = browser.http.get(MEMBERS).text
    assert "vera" in page
    assert "member-form" not in page
    assert "remove-member" not in page
    assert "change-role" not in page
    r = browser.post(MEMBERS, {"principal": "vera", "role": "owner"})
    assert r.status_code == 403
    r = browser.post("/projects/shop/-/environments", {"name": "evil", "target": "local"})
    assert r.status_code == 403
    assert members(web_api)["vera"] == "viewer"
    envs = web_api.http.get("/api/v1/projects/shop/environments", headers=web_api.admin).json()["items"]
    assert [e["name"] for e in envs] == ["dev"]


def test_forms_without_csrf_change_nothing(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "olga", "owner")
    for path, data in (
        ("/projects", {"name": "blog"}),
        (MEMBERS, {"principal": "mallory", "role": "owner"}),
        ("/projects/shop/-/environments", {"name": "qa"}),
        ("/tokens", {"name": "stolen", "scopes": "read"}),
    ):
        r = browser.http.post(path, data=data)
        assert r.status_code == 403, path
    assert "mallory" not in members(web_api)
    tokens = web_api.http.get("/api/v1/tokens", headers=web_api.admin).json()["items"]
    assert "stolen" not in {t["name"] for t in tokens}


def test_token_created_shown_once_then_revoked(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    login_as(browser, web_api, "dana", "developer")
    page = browser.http.get("/tokens").text
    assert 'id="token-form"' in page
    assert 'id="f-scope-admin"' not in page  # never more than the creator has
    assert 'id="f-principal"' not in page  # only admins make tokens for others
    r = browser.http.post(
        "/tokens",
        data={"name": "ci", "scopes": ["read"], "expires_days": "7", "csrf_token": browser.csrf("/tokens")},
    )
    assert r.status_code == 201, r.text
    secret = re.search(r'<textarea id="token-secret"[^>]*>([^<]+)</textarea>', r.text)
    assert secret
    token = secret.group(1).strip()
    assert web_api.http.get("/api/v1/whoami", headers=web_api.headers(token)).status_code == 200
    listing = browser.http.get("/tokens").text
    assert token not in listing  # shown once: never on a later page
    row = re.search(r'data-token="([^"]+)">\s*<td>ci</td>', listing)
    assert row
    r = browser.post("/tokens/revoke", {"id": row.group(1)})
    assert r.status_code == 303
    assert web_api.http.get("/api/v1/whoami", headers=web_api.headers(token)).status_code == 401
    # asking for admin scope is refused by the API and shown at the scopes
    r = browser.http.post(
        "/tokens", data={"name": "x", "scopes": ["admin"], "csrf_token": browser.csrf("/tokens")}
    )
    assert r.status_code == 403
    assert 'id="f-scopes-error"' in r.text


def test_a_read_only_session_is_offered_no_token_form(browser: Browser, web_api: Api) -> None:
    """Creating a token needs write (issue 14, item 7): a read-only session sees why instead of a form."""
    browser.login(web_api.token_for("rita", ("read",))["Authorization"].removeprefix("Bearer "))
    page = browser.http.get("/tokens").text
    assert 'id="token-form"' not in page
    assert 'id="token-read-only"' in page
    r = browser.http.post(
        "/tokens", data={"name": "x", "scopes": ["read"], "csrf_token": browser.csrf("/tokens")}
    )
    assert r.status_code == 403  # refused by the API; the page says why again
    assert 'id="token-read-only"' in r.text
