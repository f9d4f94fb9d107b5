"""The console in a real browser: headless Debian Chromium (Playwright) against a real `yunzhou server`
process with the local runtime, deploying a real app behind the real router."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.web.conftest import APP_SOURCE, DEADLINE_MS, login, screenshot_dir
from yunzhou.client import YunzhouClient, build_artifact
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def wait_rollout_succeeded(page: Page, ready: int) -> None:
    expect(page.locator("#rollout-state")).to_have_text("succeeded", timeout=DEADLINE_MS)
    expect(page.locator("#overview-live")).to_contain_text(
        f"{ready} of {ready} instances ready", timeout=DEADLINE_MS
    )


def deploy_with_form(page: Page, version: str, archive: Path | None) -> None:
    page.get_by_label("Variables").fill(f"APP_VERSION={version}\n")
    if archive is not None:
        page.get_by_label("Source archive (.tar.gz)").set_input_files(str(archive))
    expect(page.locator("#preview-yaml")).to_contain_text(f"APP_VERSION: {version}")
    page.locator("#deploy-submit").click()
    expect(page).to_have_url(re.compile(r"/apps/web/overview\?done=deploy"))


def via_router(server: ControlPlaneProcess) -> str:
    r = httpx.get(f"http://127.0.0.1:{server.router_port}/", headers={"Host": "web.dev.shop.localhost"})
    return str(r.json()["version"])


def test_deploy_watch_open_scale_logs_rollback_and_chinese(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "web.tgz"
    archive.write_bytes(build_artifact(APP_SOURCE))
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, server, tokens["dana"])

    # deploy with the form: no YAML written by hand
    page.get_by_role("link", name="shop", exact=True).click()
    page.get_by_role("link", name="dev").click()
    page.locator("#deploy-button").click()
    page.get_by_label("App name").fill("web")
    page.get_by_label("Command").fill("python3 app.py")
    page.get_by_label("Port").fill("8080")
    page.get_by_label("Readiness probe path").fill("/healthz")
    page.get_by_label("Replicas").fill("1")
    deploy_with_form(page, "v1", archive)
    wait_rollout_succeeded(page, 1)

    # open its URL through the router (a new tab from the route link)
    page.reload()
    route = page.locator("#app-route")
    expect(route).to_have_attribute("href", re.compile(r"^http://web\.dev\.shop\.localhost:\d+"))
    with context.expect_page() as opened:
        route.click()
    app_tab = opened.value
    expect(app_tab.locator("body")).to_contain_text('"version": "v1"', timeout=DEADLINE_MS)
    app_tab.close()

    # scale to 2 and watch both instances become ready
    page.get_by_label("Replicas").fill("2")
    page.get_by_role("button", name="Scale").click()
    wait_rollout_succeeded(page, 2)
    page.get_by_role("link", name="Instances").click()
    expect(page.locator("#instances tbody tr")).to_have_count(2, timeout=DEADLINE_MS)

    # logs: what the app printed, then lines that arrive while the page is open (live tail)
    page.get_by_role("link", name="Logs").click()
    expect(page.locator("#log-lines")).to_contain_text("listening", timeout=DEADLINE_MS)
    for _ in range(3):
        assert via_router(server) == "v1"
    expect(page.locator("#log-lines .stream-access").first).to_be_visible(timeout=DEADLINE_MS)
    page.get_by_label("Stream").select_option("stdout")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"stream=stdout"))
    expect(page.locator("#log-lines .log-line").first).to_be_visible()
    expect(page.locator("#log-lines .stream-access")).to_have_count(0)

    # a second release from the same form (prefilled), then roll back to the first with confirmation
    page.get_by_role("link", name="Overview").click()
    page.locator("#update-button").click()
    expect(page.get_by_label("App name")).to_have_value("web")
    deploy_with_form(page, "v2", None)
    wait_rollout_succeeded(page, 2)
    assert via_router(server) == "v2"
    page.get_by_role("link", name="Releases").click()
    page.get_by_role("link", name="Roll back to 1").click()
    page.get_by_role("button", name="Yes, roll back").click()
    expect(page.locator("#done-notice")).to_contain_text("Rolled back as release 3")
    wait_rollout_succeeded(page, 2)
    assert via_router(server) == "v1"

    shots = screenshot_dir(tmp_path)
    page.get_by_role("link", name="Overview").click()
    page.screenshot(path=str(shots / "app-overview-en.png"), full_page=True)

    # the same page in Chinese, remembered for the next pages
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("link", name="概览")).to_be_visible()
    expect(page.locator("#rollout-state")).to_have_text("成功", timeout=DEADLINE_MS)
    page.screenshot(path=str(shots / "app-overview-zh-CN.png"), full_page=True)
    page.get_by_role("link", name="版本").click()
    expect(page.get_by_role("columnheader", name="原因")).to_be_visible()
    page.screenshot(path=str(shots / "app-releases-zh-CN.png"), full_page=True)

    # phone-sized screen: the page still fits without horizontal scrolling of the whole document
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="概览").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    page.screenshot(path=str(shots / "app-overview-phone-zh-CN.png"), full_page=True)
    context.close()


def test_viewer_sees_no_controls_and_a_forged_post_is_refused(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        score = {
            "apiVersion": "score.dev/v1b1",
            "metadata": {"name": "web"},
            "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
        }
        dana.deploy("shop", "dev", score, None, dana.upload_artifact(APP_SOURCE))
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, server, tokens["vera"])
    page.goto(f"{server.url}/projects/shop/dev")
    expect(page.get_by_role("link", name="web", exact=True)).to_be_visible()
    expect(page.locator("#deploy-button")).to_have_count(0)
    page.get_by_role("link", name="web", exact=True).click()
    expect(page.locator("#scale-form")).to_have_count(0)
    expect(page.locator("#update-button")).to_have_count(0)
    page.get_by_role("link", name="Releases").click()
    expect(page.get_by_role("link", name=re.compile("Roll back"))).to_have_count(0)

    # forge the scale form with this session's cookies and a valid CSRF token: the API still says no
    csrf = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    assert csrf
    answer = page.request.post(
        f"{server.url}/projects/shop/dev/apps/web/scale",
        form={"replicas": "5", "csrf_token": csrf},
        max_redirects=0,
    )
    assert answer.status == 403
    assert "viewer" in answer.text()
    with YunzhouClient(server.url, server.admin_token) as admin:
        assert admin.get_app("shop", "dev", "web")["replicas"] == 1
    context.close()
