"""`yunzhou config` and `yunzhou secret` through the real client against the in-process API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.integration.api.test_config_api import CANARY, _score
from tests.integration.observe.test_logs_cli import in_process
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig

Run = Callable[..., Result]


@pytest.fixture
def run(api: Api, tmp_path: Path) -> Run:
    api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin)
    api.http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin)

    def invoke(*args: str, stdin: str | None = None) -> Result:
        state = CliState(transport=in_process(api))
        state.config = ClientConfig(
            url="http://yunzhou.test", token=api.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
        )
        result = CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV, input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def test_config_set_show_unset_and_secrets_by_stdin(run: Run, api: Api, tmp_path: Path) -> None:
    r = run("config", "set", "shop/dev", "DEBUG=1", "URL=http://x/?a=b")
    assert r.exit_code == 0, r.output
    assert "Set DEBUG, URL in shop/dev (config version 1); no app uses what changed" in r.output
    r = run("config", "shop/dev", "-o", "json")
    assert json.loads(r.stdout) == {"vars": {"DEBUG": "1", "URL": "http://x/?a=b"}, "version": 1}
    assert "DEBUG" in run("config", "show", "shop/dev").stdout
    run("config", "set", "shop/dev/orders", "DEBUG=2")
    r = run("config", "shop/dev/orders")
    assert "DEBUG" in r.stdout
    assert "URL (from shop/dev)" in r.stdout

    r = run("secret", "set", "shop/dev", "API_KEY", stdin=CANARY + "\n")
    assert r.exit_code == 0, r.output
    assert "Set secret API_KEY in shop/dev (version 1)" in r.output
    (tmp_path / "key.txt").write_text(CANARY + "-file")
    r = run("secret", "set", "shop/dev/orders", "API_KEY", "--from-file", str(tmp_path / "key.txt"))
    assert "version 1" in r.output
    deployed = api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": _score()}, headers=api.admin
    )
    assert deployed.status_code == 201, deployed.text
    r = run("secret", "set", "shop/dev/orders", "API_KEY", stdin=CANARY + "-again")
    assert "new release: orders 2" in r.output
    r = run("secret", "list", "shop/dev/orders", "-o", "json")
    items = json.loads(r.stdout)
    assert [(i["name"], i["scope"], i["version"]) for i in items] == [
        ("API_KEY", "env", 1),
        ("API_KEY", "app", 2),
    ]
    assert "API_KEY" in run("secret", "list", "shop/dev").stdout
    r = run("releases", "shop/dev/orders")
    assert "config: API_KEY changed" in r.stdout
    assert "config.secrets.API_KEY: changed" in r.stdout
    r = run("release", "show", "shop/dev/orders", "2")
    assert "API_KEY:" in r.stdout
    assert "version: 2" in r.stdout

    r = run("config", "unset", "shop/dev", "DEBUG")
    assert r.exit_code == 0, r.output  # orders has its own DEBUG
    r = run("config", "unset", "shop/dev/orders", "DEBUG")
    assert r.exit_code == 1
    assert "shop/dev" in r.output
    r = run("config", "set", "shop/dev", "NOEQUALS")
    assert r.exit_code == 2
    r = run("secret", "unset", "shop/dev", "API_KEY")
    assert r.exit_code == 0, r.output
    r = run("secret", "rotate-key")
    assert "re-encrypted" in r.output
    all_output = "".join(str(x) for x in (r.output,))
    assert CANARY not in all_output


def test_secret_value_is_never_echoed(run: Run) -> None:
    for args in (("secret", "set", "shop/dev", "API_KEY"), ("secret", "list", "shop/dev")):
        r = run(*args, stdin=CANARY)
        assert CANARY not in r.output
    r = run("secret", "set", "shop/dev", "API_KEY", stdin="")
    assert r.exit_code == 2
    assert "empty" in r.output


def test_secret_reveal_prints_the_value_on_stdout(run: Run) -> None:
    run("secret", "set", "shop/dev", "API_KEY", stdin=CANARY)
    r = run("secret", "reveal", "shop/dev", "API_KEY")
    assert r.exit_code == 0, r.output
    assert r.stdout == CANARY + "\n"
    assert run("secret", "reveal", "shop/dev", "NOPE").exit_code != 0
