"""The console keeps the language per user: the switch saves it (only with this browser's CSRF token),
signing in reads it back, and the cookie stays as the cache every page reads."""

from __future__ import annotations

import re

from tests.conftest import Api
from tests.integration.web.conftest import Browser

LANG_LINK = re.compile(r'href="(/lang/zh-CN\?[^"]+)"')


def saved(api: Api) -> object:
    return api.http.get("/api/v1/whoami/preferences", headers=api.admin).json()["language"]


def test_switch_saves_the_language_and_a_new_sign_in_reads_it(web_api: Api, browser: Browser) -> None:
    browser.login(web_api.admin_token)
    page = browser.http.get("/projects")
    match = LANG_LINK.search(page.text)
    assert match, page.text[:500]
    link = match.group(1).replace("&amp;", "&")
    assert "csrf=" in link
    r = browser.http.get(link)
    assert r.status_code == 303
    assert r.cookies.get("yz_lang") == "zh-CN"
    assert saved(web_api) == "zh-CN"

    # a new browser (no cookies, English) signs in as the same user: Chinese
    other = Browser(web_api)
    with other.http:
        other.login(web_api.admin_token)
        projects = other.http.get("/projects", headers={"Accept-Language": "en"})
        assert '<html lang="zh-CN">' in projects.text


def test_a_link_without_the_csrf_token_only_sets_the_cookie(web_api: Api, browser: Browser) -> None:
    browser.login(web_api.admin_token)
    r = browser.http.get("/lang/zh-CN?next=/projects")  # e.g. a link on another site
    assert r.status_code == 303
    assert r.cookies.get("yz_lang") == "zh-CN"
    assert saved(web_api) is None
    r = browser.http.get("/lang/zh-CN?next=/projects&csrf=forged")
    assert saved(web_api) is None
    # signed out, the switch works as before (cookie only)
    anonymous = Browser(web_api)
    with anonymous.http:
        assert anonymous.http.get("/lang/zh-CN?next=/login").cookies.get("yz_lang") == "zh-CN"
        assert saved(web_api) is None
