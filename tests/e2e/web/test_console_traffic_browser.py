"""The Traffic tab in a real browser against a real server with the local runtime: a refused form (a
decreasing canary weight) shows the problem next to its field and writes nothing; a canary strategy and
retries set with the form reach the API's settings; the canary that release starts is shown with its step
and weight, and Promote (after a confirmation) finishes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.web.conftest import DEADLINE_MS, deploy_web, login, reload_until_visible
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAFFIC = "/projects/shop/dev/apps/web/traffic"


def test_traffic_form_sets_canary_and_retries_and_promote_finishes_it(
    server: ControlPlaneProcess, browser: Browser, tokens: dict[str, str]
) -> None:
    deploy_web(server, tokens["dana"])
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, server, tokens["dana"])
    page.goto(f"{server.url}/projects/shop/dev/apps/web/overview")
    page.get_by_role("navigation", name="App sections").get_by_role("link", name="Traffic").click()
    expect(page).to_have_url(re.compile(r"/traffic$"))
    expect(page.locator("#traffic-policy")).to_contain_text("rolling update")

    # a decreasing weight: the API's problem is shown next to the steps field, and nothing is written
    page.get_by_label("Rollout strategy").select_option("canary")
    page.get_by_label("Canary steps").fill("50\n20")
    page.get_by_label("Attempts").fill("2")
    page.get_by_role("button", name="Save as a new release").click()
    steps = page.get_by_label("Canary steps")
    expect(steps).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#t-steps-error")).to_contain_text("must not be lower than the step before (50)")
    expect(steps).to_have_value("50\n20")
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        assert dana.get_settings("shop", "dev", "web")["settings"]["rollout"]["strategy"] == "rolling"
        assert len(dana.list_releases("shop", "dev", "web")) == 1

    # fixed: one 20 % step that waits for Promote, and 2 retries on 5xx
    steps.fill("20")
    page.get_by_label("5xx").check()
    page.get_by_role("button", name="Save as a new release").click()
    expect(page.locator("#done-notice")).to_contain_text("Traffic settings saved")
    expect(page.locator("#traffic-policy")).to_contain_text("20% until promoted")
    expect(page.locator("#traffic-policy")).to_contain_text("2 after the first try, on 5xx")
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        settings = dana.get_settings("shop", "dev", "web")["settings"]
    assert settings["rollout"]["strategy"] == "canary"
    assert settings["rollout"]["steps"] == [{"weight": 20}]
    assert settings["traffic"]["retries"]["attempts"] == 2
    assert settings["traffic"]["retries"]["retryOn"] == ["5xx"]

    # the canary of release 2 runs beside release 1 and waits at its step; Promote finishes it
    reload_until_visible(page, page.locator("#canary-step"))
    expect(page.locator("#canary-step")).to_contain_text("Step 1 of 1: 20% of the traffic")
    page.get_by_role("link", name="Promote").click()
    expect(page.get_by_role("heading", name="Promote the rollout?")).to_be_visible()
    page.get_by_role("button", name="Yes, promote").click()
    expect(page.locator("#done-notice")).to_contain_text("Promote requested")
    with YunzhouClient(server.url, tokens["dana"]) as dana:
        rollout = dana.list_rollouts("shop", "dev", "web")[0]
        assert rollout["to_release"] == 2
        done = dana.wait_for_rollout("shop", "dev", "web", rollout["id"], timeout=DEADLINE_MS / 1000)
    assert done["state"] == "succeeded", done
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#rollout-state")).to_have_text("succeeded", timeout=DEADLINE_MS)
    context.close()
