"""The Metrics tab in a real browser with real data: an app deployed on the local runtime, traffic sent
through the real router, the platform's scrape loop collecting it, and ECharts drawing it; the tab's own
refresh brings new points in without a reload. Screenshots in English, Chinese and at phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import DEADLINE_MS, deploy_web, login, screenshot_dir, traffic
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

METRICS = "/projects/shop/dev/apps/web/metrics"
CHART_DEADLINE_MS = 120_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    """A server that scrapes every second, so a test sees its traffic in the charts within seconds."""
    with ControlPlaneProcess(
        tmp_path / "data", env={"YUNZHOU_SCRAPE_INTERVAL": "1"}, host_processes=True
    ) as cp:
        yield cp


def test_metrics_charts_draw_real_traffic_refresh_and_chinese(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    deploy_web(server, tokens["dana"])
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, server, tokens["vera"])  # reading metrics needs no more than a viewer
    page.goto(f"{server.url}{METRICS}?window=15m&refresh=2")
    expect(page.get_by_role("link", name="15 min")).to_have_attribute("aria-current", "page")

    # traffic while the tab is open: its own refresh (every 2 s here) must bring the points in
    rate = page.locator('[data-chart="request_rate"]')
    with traffic(server) as codes:
        expect(rate).not_to_have_attribute("data-samples", "0", timeout=CHART_DEADLINE_MS)
        # and later points arrive in the same open page (one per 15 s step), never by a reload
        first = int(rate.get_attribute("data-samples") or "0")
        page.wait_for_function(
            "n => Number(document.querySelector('[data-chart=\"request_rate\"]').dataset.samples) >= n",
            arg=first + 2,
            timeout=CHART_DEADLINE_MS,
        )
    assert codes
    assert set(codes) == {200}
    expect(page.locator("#metrics-empty")).to_be_hidden()
    expect(page.locator("#metrics-charts")).to_be_visible()
    expect(rate.locator("svg path").first).to_be_attached()
    expect(page.locator('[data-latest="request_rate-0"]')).to_contain_text(re.compile(r"\d.*req/s"))
    expect(page.locator('[data-chart="latency"]')).not_to_have_attribute(
        "data-samples", "0", timeout=DEADLINE_MS
    )
    expect(page.locator('[data-chart="memory"]')).not_to_have_attribute(
        "data-samples", "0", timeout=DEADLINE_MS
    )
    # and the API agrees that the page drew real samples
    api = httpx.get(
        f"{server.url}/api/v1/projects/shop/environments/dev/apps/web/metrics",
        params={"window": "15m"},
        headers={"Authorization": f"Bearer {tokens['vera']}"},
    ).json()
    rate_points = next(s for s in api["series"] if s["name"] == "request_rate")["points"]
    assert any(value for _, value in rate_points)

    # every window is one keyboard-reachable link away (a 1 h window has one point a minute, so its
    # charts may still be empty this early; the 15 min window is what the screenshots show)
    page.get_by_role("link", name="1 hour").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"window=1h"))
    expect(page.get_by_role("link", name="1 hour")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="15 min").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"window=15m"))
    expect(rate).not_to_have_attribute("data-samples", "0")

    shots = screenshot_dir(tmp_path)
    page.screenshot(path=str(shots / "app-metrics-en.png"), full_page=True)
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_role("link", name="15 分钟")).to_have_attribute("aria-current", "page")
    expect(page.locator("#chart-request_rate figcaption")).to_contain_text("请求速率")
    expect(page.locator('[data-chart="request_rate"] svg path').first).to_be_attached()
    page.screenshot(path=str(shots / "app-metrics-zh-CN.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator('[data-chart="request_rate"] svg path').first).to_be_attached()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    box = page.locator('[data-chart="request_rate"]').bounding_box()
    assert box is not None
    assert box["width"] >= 300, box  # a phone gets full-width charts, not squeezed ones
    page.screenshot(path=str(shots / "app-metrics-phone-zh-CN.png"), full_page=True)
    context.close()
