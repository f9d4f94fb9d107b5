"""Management pages in a real browser: API tokens (created, secret shown once, revoked), project members,
unsetting a secret after a confirmation, and a viewer who sees none of the mutating controls."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import deploy_web, login, screenshot_dir
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def whoami_status(server: ControlPlaneProcess, token: str) -> int:
    return httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code


def test_token_create_and_revoke(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, tokens["dana"])
    page.get_by_role("link", name="API tokens").click()
    form = page.locator("#token-form")
    form.get_by_label("Name").fill("ci")
    form.get_by_label("read", exact=True).check()
    form.get_by_label("Expires in (days)").fill("0")
    form.get_by_role("button", name="Create token").click()
    # a field-level error, nothing created
    expect(page.locator("#f-expires_days-error")).to_be_visible()
    expect(page.locator("#f-expires_days")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Expires in (days)").fill("7")
    form.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-created")).to_be_visible()
    secret = page.locator("#token-secret").input_value().strip()
    assert whoami_status(server, secret) == 200

    # shown once: gone after a reload of the list
    page.goto(f"{server.url}/tokens")
    assert secret not in page.content()
    row = page.locator("#tokens-table tr", has_text="ci")
    expect(row).to_contain_text("read")
    row.get_by_role("button", name="Revoke token ci").click()
    expect(page.locator("#done-notice")).to_be_visible()
    expect(page.locator("#tokens-table tr", has_text="ci")).to_contain_text("revoked")
    assert whoami_status(server, secret) == 401
    context.close()


def test_owner_adds_a_member_and_creates_an_environment(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    with YunzhouClient(server.url, server.admin_token) as admin:
        admin.set_member("shop", "olga", "owner")
        olga = admin.create_token("olga-console", ["read", "write"], None, "olga")["token"]
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, olga)
    page.get_by_role("link", name="shop", exact=True).click()
    page.locator("#members-link").click()
    form = page.locator("#member-form")
    # keyboard only: type the name, tab to the role, choose, submit with Enter
    form.get_by_label("Principal").fill("pat")
    form.get_by_label("Role").select_option("maintainer")
    form.get_by_label("Role").press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#done-notice")).to_be_visible()
    expect(page.get_by_label("Role of pat")).to_have_value("maintainer")
    with YunzhouClient(server.url, server.admin_token) as admin:
        assert {m["principal"]: m["role"] for m in admin.list_members("shop")}["pat"] == "maintainer"

    page.get_by_role("link", name="shop", exact=True).click()
    env_form = page.locator("#env-form")
    env_form.get_by_label("Environment").fill("Bad_Name")
    env_form.get_by_role("button", name="Create environment").click()
    expect(page.locator("#f-name-error")).to_be_visible()
    env_form.get_by_label("Environment").fill("staging")
    env_form.get_by_role("button", name="Create environment").click()
    expect(page.locator("#done-notice")).to_be_visible()
    expect(page.get_by_role("link", name="staging")).to_be_visible()
    context.close()


def test_secret_unset_after_confirmation(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        dana.set_secret("shop", "dev", "OLD_TOKEN", "x")
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, tokens["dana"])
    # any app page carries the Settings tab; the secrets are the environment's
    deploy_web(server, tokens["dana"])
    page.goto(f"{server.url}/projects/shop/dev/apps/web/settings")
    page.get_by_role("link", name="Unset secret OLD_TOKEN").click()
    expect(page.get_by_role("heading", name="Unset secret OLD_TOKEN?")).to_be_visible()
    page.get_by_role("button", name="Yes, unset it").click()
    expect(page).to_have_url(re.compile(r"done=secret_unset"))
    expect(page.locator("#secrets-table")).not_to_contain_text("OLD_TOKEN")
    with YunzhouClient(server.url, server.admin_token) as admin:
        assert [
            s for s in admin.list_secrets("shop", "dev") if s["name"] == "OLD_TOKEN" and s["version"]
        ] == []
    context.close()


def test_viewer_sees_no_mutating_controls_on_the_management_pages(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        dana.set_secret("shop", "dev", "API_KEY", "x")
    deploy_web(server, tokens["dana"])
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, tokens["vera"])
    page.goto(f"{server.url}/projects/shop")
    expect(page.get_by_role("link", name="dev")).to_be_visible()
    expect(page.locator("#env-form")).to_have_count(0)
    page.locator("#members-link").click()
    expect(page.locator("#members-table")).to_contain_text("vera")
    expect(page.locator("#member-form")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Remove"))).to_have_count(0)
    expect(page.locator("#members-table select")).to_have_count(0)
    page.goto(f"{server.url}/projects/shop/dev/apps/web/settings")
    expect(page.locator("#secrets-table")).to_contain_text("API_KEY")
    expect(page.locator(".unset-secret-link")).to_have_count(0)
    expect(page.locator("#secret-form")).to_have_count(0)

    # forged: this session's cookies and a valid CSRF token; the API still refuses
    csrf = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    assert csrf
    for path, form in (
        ("/projects/shop/-/members", {"principal": "vera", "role": "owner"}),
        ("/projects/shop/dev/apps/web/secrets/unset", {"name": "API_KEY", "level": "env"}),
    ):
        answer = page.request.post(f"{server.url}{path}", form={**form, "csrf_token": csrf}, max_redirects=0)
        assert answer.status == 403, path
    with YunzhouClient(server.url, server.admin_token) as admin:
        assert {m["principal"]: m["role"] for m in admin.list_members("shop")}["vera"] == "viewer"
        assert [s["version"] for s in admin.list_secrets("shop", "dev") if s["name"] == "API_KEY"] == [1]
    context.close()


def test_management_pages_in_chinese_on_a_phone(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    with YunzhouClient(server.url, server.admin_token) as admin:
        admin.set_member("shop", "olga", "owner")
        olga = admin.create_token("olga-console", ["read", "write"], None, "olga")["token"]
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{server.url}/")
    page.get_by_label("API 令牌").fill(olga)
    page.get_by_role("button", name="登录").click()
    shots = screenshot_dir(tmp_path)
    for path, heading, name in (
        ("/projects/shop", "新建环境", "environments-phone-zh-CN.png"),
        ("/projects/shop/-/members", "添加成员", "members-phone-zh-CN.png"),
        ("/tokens", "新建令牌", "tokens-phone-zh-CN.png"),
    ):
        page.goto(f"{server.url}{path}")
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        page.screenshot(path=str(shots / name), full_page=True)
    context.close()
