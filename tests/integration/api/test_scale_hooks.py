"""Scale hooks over the real API and database: a secret URL scales within the policy's min/max, is rate
limited, audited as the hook, revocable (then refused), and only members who may deploy create one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.helpers import score
from tests.integration.observe.test_logs_cli import in_process
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database

APP = "/api/v1/projects/shop/environments/dev/apps/orders"
POLICY = {
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 10}}],
    }
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(database: Database, tmp_path: Path) -> Iterator[tuple[Api, Clock]]:
    clock = Clock()
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data", clock=clock)
    cp.projects.create(SYSTEM, "shop")
    cp.projects.create_environment(SYSTEM, "shop", "dev", "local", None)
    cp.apps.deploy(SYSTEM, "shop", "dev", score(), POLICY, None)
    api = Api(cp)
    with api.http:
        yield api, clock


def replicas(api: Api) -> int:
    return int(api.http.get(APP, headers=api.admin).json()["replicas"])


def test_hook_scales_within_bounds_is_rate_limited_audited_and_revocable(world: tuple[Api, Clock]) -> None:
    api, clock = world
    r = api.http.post(
        APP + "/scale-hooks", json={"action": "up", "min_interval_seconds": 30}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["path"].startswith("/api/v1/hooks/scale/")
    assert replicas(api) == 1

    fired = api.http.post(hook["path"])  # no token: the URL is the credential
    assert fired.status_code == 200, fired.text
    assert fired.json()["replicas"] == 2
    assert replicas(api) == 2
    limited = api.http.post(hook["path"])  # 0 s later, within 30 s
    assert limited.status_code == 503
    assert float(limited.headers["Retry-After"]) > 0
    for _ in range(3):  # up again and again: capped at maxReplicas 3
        clock.now += timedelta(seconds=31)
        assert api.http.post(hook["path"]).status_code == 200
    assert replicas(api) == 3

    audit = api.http.get("/api/v1/audit?project=shop&action=app.scale", headers=api.admin).json()["items"]
    assert audit[0]["actor"] == f"scale-hook:{hook['id']}"
    listed = api.http.get(APP + "/scale-hooks", headers=api.admin).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "token" not in listed[0]
    assert "path" not in listed[0]

    assert api.http.delete(APP + f"/scale-hooks/{hook['id']}", headers=api.admin).status_code == 200
    clock.now += timedelta(seconds=31)
    refused = api.http.post(hook["path"])
    assert refused.status_code == 404
    assert api.http.post("/api/v1/hooks/scale/not-a-hook").status_code == 404


def test_set_and_down_and_validation(world: tuple[Api, Clock]) -> None:
    api, _ = world
    bad = api.http.post(APP + "/scale-hooks", json={"action": "sideways", "step": 0}, headers=api.admin)
    assert bad.status_code == 422
    paths = {p["path"] for p in bad.json()["error"]["problems"]}
    assert {"action", "step"} <= paths
    assert api.http.post(APP + "/scale-hooks", json={"action": "set"}, headers=api.admin).status_code == 422
    to_nine = api.http.post(
        APP + "/scale-hooks", json={"action": "set", "replicas": 9}, headers=api.admin
    ).json()
    assert api.http.post(to_nine["path"]).json()["replicas"] == 3  # clamped to maxReplicas
    down = api.http.post(APP + "/scale-hooks", json={"action": "down", "step": 5}, headers=api.admin).json()
    assert api.http.post(down["path"]).json()["replicas"] == 1  # clamped to minReplicas
    viewer = api.member("shop", "vera", "viewer", ("read", "write"))
    assert api.http.post(APP + "/scale-hooks", json={"action": "up"}, headers=viewer).status_code == 403
    assert api.http.get(APP + "/scale-hooks", headers=viewer).status_code == 200


def test_cli_create_list_revoke_and_decisions(world: tuple[Api, Clock], tmp_path: Path) -> None:
    api, _ = world

    def run(*args: str) -> Result:
        state = CliState(transport=in_process(api))
        state.config = ClientConfig(
            url="http://yunzhou.test", token=api.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
        )
        result = CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    created = run(
        "scale-hook", "create", "shop/dev/orders", "--action", "set", "--replicas", "2", "-o", "json"
    )
    assert created.exit_code == 0, created.output
    hook = json.loads(created.stdout)
    assert hook["url"].startswith("http://yunzhou.test/api/v1/hooks/scale/")
    assert api.http.post(hook["path"]).json()["replicas"] == 2
    listed = run("scale-hook", "list", "shop/dev/orders")
    assert hook["id"] in listed.stdout
    assert hook["path"] not in listed.stdout
    assert run("scale-hook", "revoke", "shop/dev/orders", hook["id"]).exit_code == 0
    assert api.http.post(hook["path"]).status_code == 404
    decisions = run("autoscale", "decisions", "shop/dev/orders", "-o", "json")
    assert decisions.exit_code == 0, decisions.output
    assert json.loads(decisions.stdout) == []
