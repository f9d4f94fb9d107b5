"""The screenshots in docs/console.md: the console's main pages with a real app on the local runtime (two
releases, traffic through the router, logs and metrics), in English, in Chinese and at phone width.

`make screenshots` runs this module with YUNZHOU_SCREENSHOT_DIR=docs/console; otherwise the PNGs go to the
test's temporary directory. Each page is checked for the content the picture is meant to show before it is
taken, so a broken page fails the test instead of landing in the docs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.web.conftest import (
    APP_SOURCE,
    DEADLINE_MS,
    login,
    reload_until_visible,
    screenshot_dir,
    traffic,
)
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = "/projects/shop/dev/apps/web"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHART_DEADLINE_MS = 120_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    """Scrapes every second, so the metrics charts have points within seconds; the local DNS provider writes
    a hosts file of the test's own."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    env = {"YUNZHOU_SCRAPE_INTERVAL": "1", "YUNZHOU_NAMES_INTERVAL": "0.5", "YUNZHOU_HOSTS_FILE": str(hosts)}
    with ControlPlaneProcess(tmp_path / "data", env=env, host_processes=True) as cp:
        yield cp


def deploy_two_releases(server: ControlPlaneProcess, token: str) -> None:
    """shop/dev/web v1, then v2 (a changed variable, so the releases diff has something to show)."""
    with YunzhouClient(server.url, token) as dana:
        artifact = dana.upload_artifact(APP_SOURCE)
        for version in ("v1", "v2"):
            container = {
                "image": "python:3.11-slim",
                "command": ["python3", "app.py"],
                "variables": {"APP_VERSION": version},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
            score = {
                "apiVersion": "score.dev/v1b1",
                "metadata": {"name": "web"},
                "containers": {"web": container},
                "service": {"ports": {"web": {"port": 8080, "targetPort": 8080}}},
            }
            deployment = dana.deploy("shop", "dev", score, None, artifact)
            rollout = dana.wait_for_rollout("shop", "dev", "web", deployment["rollout"]["id"], timeout=90)
            assert rollout["state"] == "succeeded", rollout


def shoot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"))  # the viewport only: a fixed size, small files


def test_screenshots_of_the_main_pages(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    deploy_two_releases(server, tokens["dana"])
    shots = screenshot_dir(tmp_path)
    context = browser.new_context(locale="en-US", viewport=VIEWPORT)
    page = context.new_page()

    page.goto(f"{server.url}/login")
    expect(page.get_by_label("API token")).to_be_visible()
    shoot(page, shots, "login")
    login(page, server, tokens["dana"])

    page.goto(f"{server.url}/projects/shop/dev")
    expect(page.locator("#deploy-button")).to_be_visible()
    expect(page.get_by_role("link", name="web", exact=True)).to_be_visible()
    shoot(page, shots, "apps")

    # a few requests through the router, then the logs: the app's own lines and the access records
    for _ in range(5):
        answer = httpx.get(
            f"http://127.0.0.1:{server.router_port}/", headers={"Host": "web.dev.shop.localhost"}
        )
        assert answer.json()["version"] == "v2"
    page.goto(f"{server.url}{APP}/logs")
    expect(page.locator("#log-lines .stream-access")).to_have_count(5, timeout=DEADLINE_MS)
    expect(page.locator("#log-lines")).to_contain_text("listening")
    shoot(page, shots, "app-logs")

    with traffic(server) as codes:
        page.goto(f"{server.url}{APP}/metrics?window=15m&refresh=2")
        rate = page.locator('[data-chart="request_rate"]')
        expect(rate).not_to_have_attribute("data-samples", "0", timeout=CHART_DEADLINE_MS)
        page.wait_for_function(
            "n => Number(document.querySelector('[data-chart=\"request_rate\"]').dataset.samples) >= n",
            arg=3,
            timeout=CHART_DEADLINE_MS,
        )
        expect(page.locator('[data-chart="memory"]')).not_to_have_attribute(
            "data-samples", "0", timeout=DEADLINE_MS
        )
    assert codes
    assert set(codes) == {200}
    shoot(page, shots, "app-metrics")

    page.goto(f"{server.url}{APP}/overview")
    expect(page.locator("#rollout-state")).to_have_text("succeeded", timeout=DEADLINE_MS)
    shoot(page, shots, "app-overview")

    page.goto(f"{server.url}{APP}/releases?a=1&b=2")
    expect(page.locator("#diff")).to_contain_text("APP_VERSION")
    page.locator("#diff").scroll_into_view_if_needed()
    shoot(page, shots, "app-releases-diff")

    page.goto(f"{server.url}{APP}/overview")
    page.locator("#update-button").click()
    expect(page.get_by_label("App name")).to_have_value("web")
    expect(page.locator("#preview-yaml")).to_contain_text("APP_VERSION: v2")
    shoot(page, shots, "deploy-form")

    # the Traffic tab while a canary (set through the API, as `yunzhou settings set` does) waits at its step
    canary = {
        "rollout": {"strategy": "canary", "steps": [{"weight": 50}]},
        "traffic": {
            "retries": {"attempts": 2, "retryOn": ["gateway-error", "5xx"]},
            "timeouts": {"perTry": "2s"},
        },
    }
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        rollout = dana.update_settings("shop", "dev", "web", canary)["rollout"]
        page.goto(f"{server.url}{APP}/traffic")
        reload_until_visible(page, page.locator("#canary-step"))
        expect(page.locator("#promote-link")).to_be_visible()
        shoot(page, shots, "app-traffic")
        dana.rollout_command("shop", "dev", "web", "promote")
        done = dana.wait_for_rollout("shop", "dev", "web", rollout["id"], timeout=DEADLINE_MS / 1000)
        assert done["state"] == "succeeded", done

    # the Domains tab: the app's record at the local DNS provider, synced by the names reconciler, and a
    # custom domain waiting for its TXT record
    with YunzhouClient(server.url, server.admin_token) as admin:
        admin.add_dns_provider("machine", "local", {"zones": ["yunzhou.test"]})
        admin.set_environment_names("shop", "dev", names={"provider": "machine", "zone": "yunzhou.test"})
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        dana.add_custom_domain("shop", "dev", "web", "shop.example.com")
    page.goto(f"{server.url}{APP}/domains")
    reload_until_visible(page, page.locator("#app-records .dns-synced"))
    expect(page.locator('#custom-domains tr[data-domain="shop.example.com"]')).to_contain_text("pending")
    shoot(page, shots, "app-domains")

    # the same overview in Chinese (legible only with a CJK font: fonts-noto-cjk), then on a phone
    page.goto(f"{server.url}{APP}/overview")
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#rollout-state")).to_have_text("成功", timeout=DEADLINE_MS)
    shoot(page, shots, "app-overview-zh-CN")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.get_by_role("link", name="概览")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    shoot(page, shots, "app-overview-phone-zh-CN")
    context.close()
