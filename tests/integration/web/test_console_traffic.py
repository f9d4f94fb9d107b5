"""The Traffic tab over the in-process API: the policy in words, the form's partial settings PATCH (canary
steps, retries, timeouts, rate limit, access; switching back to rolling drops the steps), problems next to
their field with nothing written, Promote / Abort with a confirmation, a viewer without controls, 中文."""

from __future__ import annotations

import re

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.web.i18n import translate

APP = "/projects/shop/dev/apps/web"
SETTINGS = "/api/v1/projects/shop/environments/dev/apps/web/settings"
RELEASES = "/api/v1/projects/shop/environments/dev/apps/web/releases"
FORM = {
    "strategy": "canary",
    "steps": "10 pause=30s\n25 window=1m maxErrorRate=0.02\n50",
    "preview_host": "",
    "retries_attempts": "2",
    "retry_on": "5xx",
    "timeout_per_try": "500ms",
    "timeout_overall": "5s",
    "rate_rps": "100",
    "rate_burst": "200",
    "access_default": "deny",
    "access_allow": "frontend, shop/staging/*",
    "access_deny": "batch",
}


def deploy(api: Api, settings: dict[str, object] | None = None) -> None:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    }
    r = api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments",
        json={"score": score, "settings": settings or {}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text


def setup(api: Api) -> None:
    for path, body in (
        ("/api/v1/projects", {"name": "shop"}),
        ("/api/v1/projects/shop/environments", {"name": "dev"}),
    ):
        assert api.http.post(path, json=body, headers=api.admin).status_code == 201
    deploy(api)


def settings_of(api: Api) -> dict[str, object]:
    settings: dict[str, object] = api.http.get(SETTINGS, headers=api.admin).json()["settings"]
    return settings


def release_count(api: Api) -> int:
    return len(api.http.get(RELEASES, headers=api.admin).json()["items"])


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<span id="t-{name}-error" class="field-error" role="alert">([^<]*)</span>', html)
    assert match, f"no error shown for {name}"
    return match.group(1)


def test_form_sets_canary_and_policy_then_rolling_drops_the_steps(web_api: Api, browser: Browser) -> None:
    setup(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(APP + "/traffic")
    assert page.status_code == 200, page.text
    assert 'id="traffic-form"' in page.text
    assert translate("en", "traffic.strategy.rolling") in page.text

    r = browser.post(APP + "/traffic", FORM)
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith("/traffic?done=traffic")
    settings = settings_of(web_api)
    assert settings["rollout"] == {
        "strategy": "canary",
        "maxSurge": 1,
        "maxUnavailable": 0,
        "steps": [
            {"weight": 10, "pause": "30s"},
            {"weight": 25, "analysis": {"window": "60s", "minRequests": 20, "maxErrorRate": 0.02}},
            {"weight": 50},
        ],
    }
    traffic = settings["traffic"]
    assert isinstance(traffic, dict)
    assert traffic["retries"]["attempts"] == 2
    assert traffic["retries"]["retryOn"] == ["5xx"]
    assert traffic["timeouts"] == {"perTry": "500ms", "overall": "5s"}
    assert traffic["rateLimit"]["rps"] == 100
    assert traffic["rateLimit"]["burst"] == 200
    assert traffic["access"]["default"] == "deny"
    assert traffic["access"]["allow"] == ["frontend", "shop/staging/*"]
    assert traffic["access"]["deny"] == ["batch"]

    # the page says it in words and the form is filled from the settings
    page = browser.http.get(APP + "/traffic").text
    assert translate("en", "traffic.step_pause", weight=10, pause="30s") in page
    assert translate("en", "traffic.step_manual", weight=50) in page
    assert translate("en", "traffic.retries_value", attempts=2, on="5xx") in page
    assert "25 window=60s maxErrorRate=0.02 minRequests=20" in page
    assert re.search(r'<option value="canary" selected>', page)

    # back to rolling, retries and the rate limit cleared: those keys are removed, not left behind
    rolling = {**FORM, "strategy": "rolling", "retries_attempts": "", "rate_rps": "", "rate_burst": ""}
    r = browser.post(APP + "/traffic", rolling)
    assert r.status_code == 303, r.text
    settings = settings_of(web_api)
    assert settings["rollout"] == {"strategy": "rolling", "maxSurge": 1, "maxUnavailable": 0}
    traffic = settings["traffic"]
    assert isinstance(traffic, dict)
    assert "retries" not in traffic
    assert "rateLimit" not in traffic
    assert traffic["access"]["default"] == "deny"


def test_problems_are_shown_next_to_their_field_and_nothing_is_written(
    web_api: Api, browser: Browser
) -> None:
    setup(web_api)
    browser.login(web_api.admin_token)
    before, releases = settings_of(web_api), release_count(web_api)

    # the API's problems: a decreasing weight and a negative retry count, both at once
    r = browser.post(APP + "/traffic", {**FORM, "steps": "50\n20", "retries_attempts": "-1"})
    assert r.status_code == 422, r.text
    assert "must not be lower than the step before (50)" in field_error(r.text, "steps")
    assert "rollout.steps.1.weight" in field_error(r.text, "steps")
    assert "must be an integer 0-10" in field_error(r.text, "retries_attempts")
    assert 'id="t-steps" name="steps" rows="4"' in r.text
    assert 'aria-describedby="t-steps-hint t-steps-error" aria-invalid="true"' in r.text
    assert ">50\n20</textarea>" in r.text  # what was typed stays in the form

    # the form's own: a step line without a weight is refused before anything is sent
    r = browser.post(APP + "/traffic", {**FORM, "steps": "pause=30s"})
    assert r.status_code == 422
    assert "start with the weight" in field_error(r.text, "steps")
    assert settings_of(web_api) == before
    assert release_count(web_api) == releases


def test_promote_and_abort_a_canary_in_progress_with_confirmation(web_api: Api, browser: Browser) -> None:
    setup(web_api)
    # a canary release over the running one: its rollout waits (no reconciler runs here)
    deploy(web_api, {"rollout": {"strategy": "canary", "steps": [{"weight": 20}]}})
    browser.login(web_api.admin_token)
    page = browser.http.get(APP + "/traffic").text
    assert 'id="rollout-progress-card"' in page
    assert translate("en", "traffic.in_progress", strategy="canary", release=2) in page
    assert f'href="{APP}/traffic/rollout?command=promote"' in page
    assert f'href="{APP}/traffic/rollout?command=abort"' in page

    confirm = browser.http.get(APP + "/traffic/rollout?command=abort")
    assert confirm.status_code == 200
    assert translate("en", "traffic.confirm.abort") in confirm.text
    r = browser.post(APP + "/traffic/rollout", {"command": "abort"})
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith("/traffic?done=abort")
    rollouts = web_api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/web/rollouts", headers=web_api.admin
    ).json()["items"]
    assert rollouts[0]["strategy"]["command"] == "abort"
    audit = web_api.http.get("/api/v1/audit", params={"action": "rollout.abort"}, headers=web_api.admin)
    assert audit.json()["items"], audit.text


def test_viewer_sees_the_policy_without_controls_and_chinese(web_api: Api, browser: Browser) -> None:
    setup(web_api)
    deploy(web_api, {"rollout": {"strategy": "canary", "steps": [{"weight": 20}]}})
    viewer = web_api.member("shop", "vera", "viewer")["Authorization"].removeprefix("Bearer ")
    browser.login(viewer)
    page = browser.http.get(APP + "/traffic").text
    assert 'id="traffic-policy"' in page
    assert 'id="rollout-progress-card"' in page
    assert 'id="traffic-form"' not in page
    assert "promote-link" not in page
    assert "abort-link" not in page
    # a forged POST is refused by the API, and nothing changes
    before = settings_of(web_api)
    r = browser.post(APP + "/traffic", FORM)
    assert r.status_code == 403
    assert settings_of(web_api) == before

    browser.http.cookies.set("yz_lang", "zh-CN")
    page = browser.http.get(APP + "/traffic").text
    assert translate("zh-CN", "tab.traffic") in page
    assert translate("zh-CN", "traffic.step_manual", weight=20) in page
