"""Names and TLS in a real browser against a real `yunzhou server` whose names reconciler writes to the local
provider (a hosts file): an admin gives shop/dev a naming rule with the form — a bad rule refused next to its
field with nothing written first —, the DNS page shows the app's record synced by the reconciler, a developer
adds a custom domain on the app's Domains tab and copies its TXT value with the Copy button, verifies and
removes it; 中文; a viewer sees no controls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import deploy_web, login, reload_until_visible, screenshot_dir
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORD = "web.dev.shop.yunzhou.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    """A server whose local DNS provider writes a hosts file of the test's own, reconciled twice a second."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    env = {"YUNZHOU_NAMES_INTERVAL": "0.5", "YUNZHOU_HOSTS_FILE": str(hosts)}
    with ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as cp:
        yield cp


def test_names_form_dns_page_and_custom_domains(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    with YunzhouClient(server.url, server.admin_token) as admin:
        admin.add_dns_provider("machine", "local", {"zones": ["yunzhou.test"]})
    deploy_web(server, tokens["dana"])
    shots = screenshot_dir(tmp_path)

    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, server.admin_token)
    page.goto(f"{server.url}/projects/shop/dev")
    expect(page.locator("#names-summary")).to_contain_text("No DNS records are made")
    page.locator("#names-link").click()
    form = page.locator("#names-form")
    form.get_by_label("Provider").select_option("machine")
    form.get_by_label("Zone").fill("yunzhou.test")
    form.get_by_label("Naming rule").fill("{app}.{zone}")  # no {project}: two projects' apps could clash
    form.get_by_label("HTTPS certificates").select_option("local")
    form.get_by_role("button", name="Save names and TLS").click()
    expect(page.locator("#f-rule-error")).to_contain_text("names.rule")
    expect(page.locator("#f-rule")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-zone")).to_have_value("yunzhou.test")  # what was typed is kept
    page.screenshot(path=str(shots / "env-names-error.png"), full_page=True)
    with YunzhouClient(server.url, server.admin_token) as admin:
        assert admin.get_environment("shop", "dev")["names"] is None, "nothing written"
    form.get_by_label("Naming rule").fill("")  # the default rule
    form.get_by_role("button", name="Save names and TLS").click()
    expect(page.locator("#done-notice")).to_be_visible()
    expect(page.locator("#names-summary")).to_contain_text("{app}.{env}.{project}.{zone}")
    expect(page.locator("#names-summary")).to_contain_text("local CA")

    # the reconciler makes the record; the DNS page shows it synced, the provider without any secret
    page.get_by_role("link", name="DNS", exact=True).click()
    expect(page.locator('#dns-providers tr[data-provider="machine"]')).to_contain_text("shop/dev")
    synced = page.locator(f'#dns-records tr[data-record="{RECORD}/A"] .dns-synced')
    reload_until_visible(page, synced)
    expect(page.locator(f'#dns-records tr[data-record="{RECORD}/A"]')).to_contain_text("127.0.0.1")
    page.screenshot(path=str(shots / "dns.png"), full_page=True)
    context.close()

    context = browser.new_context(locale="en-US", permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    login(page, server, tokens["dana"])
    page.goto(f"{server.url}/projects/shop/dev/apps/web/overview")
    page.get_by_role("navigation", name="App sections").get_by_role("link", name="Domains").click()
    expect(page.locator(f'#app-records tr[data-record="{RECORD}/A"]')).to_be_visible()
    page.locator("#domain-form").get_by_label("Host").fill("shop.example.com")
    page.locator("#domain-form").get_by_label("Host").press("Enter")
    expect(page.locator("#done-notice")).to_be_visible()
    row = page.locator('#custom-domains tr[data-domain="shop.example.com"]')
    expect(row).to_contain_text("pending")
    expect(row).to_contain_text("_yunzhou-challenge.shop.example.com")
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        (domain,) = dana.list_custom_domains("shop", "dev", "web")
    copy = row.get_by_role("button", name="Copy the TXT value for shop.example.com")
    copy.click()  # shown and working only with JavaScript
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == domain["challenge"]["value"]
    row.get_by_role("button", name="Verify shop.example.com").click()
    expect(page.locator("#done-notice")).to_contain_text("looked up")
    page.screenshot(path=str(shots / "app-domains.png"), full_page=True)

    # 中文
    page.get_by_role("link", name="中文").click()
    expect(page.locator("main")).to_contain_text("自定义域名")
    expect(page.locator("main")).to_contain_text("已同步")
    page.get_by_role("link", name="English").click()
    page.locator('#custom-domains tr[data-domain="shop.example.com"]').get_by_role(
        "button", name="Remove shop.example.com"
    ).click()
    expect(page.locator("#domains-empty")).to_be_visible()
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        assert dana.list_custom_domains("shop", "dev", "web") == []
    context.close()

    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, tokens["vera"])
    page.goto(f"{server.url}/projects/shop/dev/apps/web/domains")
    expect(page.locator(f'#app-records tr[data-record="{RECORD}/A"]')).to_be_visible()
    expect(page.locator("#domain-form")).to_have_count(0)
    page.goto(f"{server.url}/projects/shop/dev/names")
    expect(page.locator("#names-summary")).to_be_visible()
    expect(page.locator("#names-form")).to_have_count(0)
    assert re.search(r"/names$", page.url)
    context.close()
