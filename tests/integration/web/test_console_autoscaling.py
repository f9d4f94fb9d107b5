"""The Autoscaling tab over the in-process API: the policy summary from the app's settings, a real decision
recorded through the autoscaling service (as the local autoscaler records it), the empty state, zh-CN."""

from __future__ import annotations

import time

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.web.i18n import translate

TAB = "/projects/shop/dev/apps/web/autoscaling"
POLICY = {
    "minReplicas": 1,
    "maxReplicas": 5,
    "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 50}}],
    "scaleToZero": {"enabled": False},
}


def deploy(api: Api, settings: dict[str, object] | None = None) -> None:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    }
    body: dict[str, object] = {"score": score}
    if settings is not None:
        body["settings"] = settings
    for method, path, payload in (
        ("POST", "/api/v1/projects", {"name": "shop"}),
        ("POST", "/api/v1/projects/shop/environments", {"name": "dev"}),
        ("POST", "/api/v1/projects/shop/environments/dev/deployments", body),
    ):
        r = api.http.request(method, path, json=payload, headers=api.admin)
        assert r.status_code in (200, 201), r.text


def test_tab_shows_policy_and_a_recorded_decision(web_api: Api, browser: Browser) -> None:
    deploy(web_api, {"autoscaling": POLICY})
    (target,) = web_api.cp.autoscaling.targets()
    decision = {
        "time": time.time(),
        "current": 1,
        "desired": 3,
        "mode": "reactive",
        "reason": "DesiredWithinRange",
        "inputs": {"rps": {"value": 140.0, "proposal": 3}},
    }
    web_api.cp.autoscaling.record(target, decision, apply=False)
    browser.login(web_api.admin_token)

    page = browser.http.get(TAB)
    assert page.status_code == 200, page.text
    text = page.text
    assert 'id="autoscale-policy"' in text
    assert translate("en", "autoscale.range_value", min=1, max=5) in text
    assert "rps AverageValue 50" in text
    row = text[text.index('<tr class="decision">') :]
    row = row[: row.index("</tr>")]
    for value in ("reactive", "<td>1</td>", "<td>3</td>", "DesiredWithinRange", "140.0"):
        assert value in row, value
    # not applied: the service records it without scaling
    assert f"<td>{translate('en', 'autoscale.no')}</td>" in row
    assert 'id="autoscale-empty"' not in text
    # the tab is linked from every app page
    assert (
        'href="/projects/shop/dev/apps/web/autoscaling"'
        in browser.http.get(TAB[: -len("autoscaling")] + "overview").text
    )

    browser.http.cookies.set("yz_lang", "zh-CN")
    zh = browser.http.get(TAB).text
    assert translate("zh-CN", "tab.autoscaling") in zh
    assert translate("zh-CN", "autoscale.decisions") in zh
    assert translate("zh-CN", "autoscale.no") in zh


def test_tab_without_policy_or_decisions_shows_empty_states(web_api: Api, browser: Browser) -> None:
    deploy(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB)
    assert page.status_code == 200, page.text
    assert translate("en", "autoscale.no_policy") in page.text
    assert translate("en", "autoscale.empty") in page.text
    assert 'id="autoscale-decisions"' not in page.text


SETTINGS = "/api/v1/projects/shop/environments/dev/apps/web/settings"


def autoscaling_of(api: Api) -> dict[str, object] | None:
    policy: dict[str, object] | None = (
        api.http.get(SETTINGS, headers=api.admin).json()["settings"].get("autoscaling")
    )
    return policy


def test_form_sets_the_policy_then_changes_and_removes_it(web_api: Api, browser: Browser) -> None:
    deploy(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB).text
    assert 'id="autoscale-form"' in page
    assert '<label for="a-metric-value-1">' in page  # every input has its label

    r = browser.post(
        TAB,
        {
            "enabled": "on",
            "min_replicas": "0",
            "max_replicas": "6",
            "metric_type": ["cpu", "rps", "inflight"],
            "metric_value": ["70", "40", ""],
            "idle_seconds": "300",
            "predictive": "on",
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith("/autoscaling?done=autoscaling")
    policy = autoscaling_of(web_api)
    assert policy is not None
    assert policy["minReplicas"] == 0
    assert policy["maxReplicas"] == 6
    assert policy["metrics"] == [
        {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        {"type": "rps", "target": {"type": "AverageValue", "averageValue": 40.0}},
    ]
    assert policy["scaleToZero"] == {
        "enabled": True,
        "idleSeconds": 300,
        "holdTimeoutSeconds": 30,
        "queueLimit": 1000,
    }
    assert isinstance(policy["predictive"], dict)
    assert policy["predictive"]["metric"] == "rps"

    # the summary and the form now show it
    page = browser.http.get(TAB).text
    assert translate("en", "autoscale.range_value", min=0, max=6) in page
    assert translate("en", "autoscale.scale_to_zero_value", idle=300) in page
    assert 'id="a-metric-value-2" name="metric_value" type="number" step="any" value="40"' in page

    # predictive and scale to zero off, one metric: those keys are removed
    r = browser.post(
        TAB,
        {
            "enabled": "on",
            "min_replicas": "1",
            "max_replicas": "3",
            "metric_type": "rps",
            "metric_value": "25",
        },
    )
    assert r.status_code == 303, r.text
    policy = autoscaling_of(web_api)
    assert policy is not None
    assert "predictive" not in policy
    assert policy["scaleToZero"]["enabled"] is False
    assert policy["metrics"] == [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 25.0}}]

    # unchecked: no policy at all
    assert browser.post(TAB, {"min_replicas": "1", "max_replicas": "3"}).status_code == 303
    assert autoscaling_of(web_api) is None
    assert translate("en", "autoscale.no_policy") in browser.http.get(TAB).text


def test_custom_metrics_are_kept_and_problems_shown_next_to_their_field(
    web_api: Api, browser: Browser
) -> None:
    custom = {
        "type": "custom",
        "name": "orders_per_second",
        "target": {"type": "AverageValue", "averageValue": 100},
    }
    deploy(web_api, {"autoscaling": {**POLICY, "metrics": [*POLICY["metrics"], custom]}})
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB).text
    assert 'id="a-kept"' in page
    assert "custom orders_per_second AverageValue 100" in page
    before = autoscaling_of(web_api)

    # max below min, a negative target and scale to zero too soon: each next to its field, nothing written
    r = browser.post(
        TAB,
        {
            "enabled": "on",
            "min_replicas": "3",
            "max_replicas": "2",
            "metric_type": "rps",
            "metric_value": "-5",
            "idle_seconds": "5",
        },
    )
    assert r.status_code == 422, r.text
    assert 'id="a-max_replicas-error"' in r.text
    assert "must be at least minReplicas (3)" in r.text
    assert 'id="a-metrics-error"' in r.text
    assert 'id="a-idle_seconds-error"' in r.text
    assert 'id="a-max_replicas" name="max_replicas" type="number" value="2" aria-invalid="true"' in r.text
    assert autoscaling_of(web_api) == before

    # a valid change keeps the custom metric the form cannot show
    r = browser.post(
        TAB,
        {
            "enabled": "on",
            "min_replicas": "1",
            "max_replicas": "8",
            "metric_type": "cpu",
            "metric_value": "60",
        },
    )
    assert r.status_code == 303, r.text
    policy = autoscaling_of(web_api)
    assert policy is not None
    assert policy["maxReplicas"] == 8
    assert [m["type"] for m in policy["metrics"]] == ["cpu", "custom"]


def test_viewer_sees_no_form_and_a_forged_post_is_refused(web_api: Api, browser: Browser) -> None:
    deploy(web_api, {"autoscaling": POLICY})
    viewer = web_api.member("shop", "vera", "viewer")["Authorization"].removeprefix("Bearer ")
    browser.login(viewer)
    page = browser.http.get(TAB).text
    assert 'id="autoscale-policy"' in page
    assert 'id="autoscale-form"' not in page
    before = autoscaling_of(web_api)
    r = browser.post(
        TAB,
        {
            "enabled": "on",
            "min_replicas": "1",
            "max_replicas": "9",
            "metric_type": "cpu",
            "metric_value": "50",
        },
    )
    assert r.status_code == 403
    assert autoscaling_of(web_api) == before
    browser.http.cookies.set("yz_lang", "zh-CN")
    assert translate("zh-CN", "autoscale.change") not in browser.http.get(TAB).text
