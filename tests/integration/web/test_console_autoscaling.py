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
