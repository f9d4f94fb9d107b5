"""`yunzhou domains` and /api/v1/domains: the registered-domain watch list is for platform admins, names
are checked (a refused request writes nothing), and lists take -o json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.integration.observe.test_logs_cli import in_process
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig

Run = Callable[..., Result]


@pytest.fixture
def run(api: Api, tmp_path: Path) -> Run:
    def invoke(*args: str) -> Result:
        state = CliState(transport=in_process(api))
        state.config = ClientConfig(
            url="http://yunzhou.test", token=api.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
        )
        return CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV)

    return invoke


def test_domains_add_list_remove_through_the_cli(run: Run) -> None:
    r = run("domains", "add", "Example.COM")
    assert r.exit_code == 0, r.output
    assert "Watching example.com" in r.output
    r = run("domains", "list", "-o", "json")
    [item] = json.loads(r.stdout)
    assert (item["name"], item["expires_at"], item["checked_at"], item["error"]) == (
        "example.com",
        None,
        None,
        None,
    )
    assert "not looked up yet" in run("domains", "list").stdout
    r = run("domains", "add", "example.com")
    assert r.exit_code != 0
    assert "already watched" in r.output
    r = run("domains", "remove", "example.com")
    assert r.exit_code == 0, r.output
    assert json.loads(run("domains", "list", "-o", "json").stdout) == []
    r = run("domains", "remove", "example.com")
    assert r.exit_code != 0
    assert "not watched" in r.output


@pytest.mark.parametrize("name", ["com", "exa mple.com", "", "a..b"])
def test_bad_domain_is_422_naming_the_field_and_writes_nothing(api: Api, name: str) -> None:
    r = api.http.post("/api/v1/domains", json={"name": name}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert [p["path"] for p in r.json()["error"]["problems"]] == ["name"]
    assert api.http.get("/api/v1/domains", headers=api.admin).json() == {"items": []}


def test_unknown_field_is_refused(api: Api) -> None:
    r = api.http.post("/api/v1/domains", json={"name": "example.com", "rdap": "x"}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert api.http.get("/api/v1/domains", headers=api.admin).json() == {"items": []}


def test_only_platform_admins_see_or_change_the_watch_list(api: Api) -> None:
    user = api.token_for("dev")
    assert api.http.post("/api/v1/domains", json={"name": "example.com"}, headers=user).status_code == 403
    assert api.http.get("/api/v1/domains", headers=user).status_code == 403
    assert (
        api.http.post("/api/v1/domains", json={"name": "example.com"}, headers=api.admin).status_code == 201
    )
    assert api.http.delete("/api/v1/domains/example.com", headers=user).status_code == 403
    assert [d["name"] for d in api.http.get("/api/v1/domains", headers=api.admin).json()["items"]] == [
        "example.com"
    ]
