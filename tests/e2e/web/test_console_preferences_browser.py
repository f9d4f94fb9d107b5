"""The language is remembered per user, not per browser: chosen in one browser context, it is what a fresh
context (no cookies, an English browser) shows after signing in with the same user's token."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import login
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.web.i18n import translate

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_language_follows_the_user_into_a_fresh_browser(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    first = browser.new_context(locale="en-US")
    page = first.new_page()
    login(page, server, tokens["dana"])
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    first.close()
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        assert dana.get_preferences() == {"language": "zh-CN"}

    fresh = browser.new_context(locale="en-US")  # no cookies; the browser asks for English
    page = fresh.new_page()
    login(page, server, tokens["dana"])  # the sign-in page is still English
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", level=1)).to_have_text(translate("zh-CN", "projects.title"))

    # switching back here is saved for the user too
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    fresh.close()
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        assert dana.get_preferences() == {"language": "en"}
    # another user keeps its own (none chosen)
    with YunzhouClient(server.url, tokens["vera"]) as vera:
        assert vera.get_preferences() == {"language": None}
