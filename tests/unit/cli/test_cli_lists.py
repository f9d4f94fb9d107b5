"""Every list command: ``-o json`` prints exactly the API's items; the default is a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.unit.cli.conftest import Run
from tests.unit.client.fake_api import FakeApi


@pytest.fixture
def deployed(shop: Run, score_file: Path) -> Run:
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    assert shop("scale", "shop/dev/orders", "2").exit_code == 0
    assert shop("project", "add-member", "shop", "alice", "--role", "viewer").exit_code == 0
    return shop


LISTS = [
    (("project", "list"), lambda f: list(f.projects.values())),
    (
        ("project", "members", "shop"),
        lambda f: [{"principal": p, "role": r} for p, r in sorted(f.members["shop"].items())],
    ),
    (("env", "list", "shop"), lambda f: [f.envs[("shop", "dev")], f.envs[("shop", "prod")]]),
    (("apps", "shop/dev"), lambda f: [f.apps[("shop", "dev", "orders")]]),
    (("releases", "shop/dev/orders"), lambda f: f.releases[("shop", "dev", "orders")]),
    (("rollouts", "shop/dev/orders"), lambda f: f.rollouts[("shop", "dev", "orders")]),
    (("audit",), lambda f: list(reversed(f.audit))),
    (("token", "list"), lambda f: list(f.tokens.values())),
]


@pytest.mark.parametrize(("args", "expected"), LISTS, ids=[" ".join(a) for a, _ in LISTS])
def test_json_output_is_exactly_the_items(
    deployed: Run, fake: FakeApi, args: tuple[str, ...], expected: object
) -> None:
    result = deployed(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected(fake)  # type: ignore[operator]
    assert result.stderr == ""


@pytest.mark.parametrize(("args", "expected"), LISTS, ids=[" ".join(a) for a, _ in LISTS])
def test_yaml_output_is_exactly_the_items(
    deployed: Run, fake: FakeApi, args: tuple[str, ...], expected: object
) -> None:
    result = deployed(*args, "--output", "yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == expected(fake)  # type: ignore[operator]


def test_tables_have_headers_and_rows(deployed: Run) -> None:
    apps = deployed("apps", "shop/dev")
    assert apps.exit_code == 0
    header, *rows = [line for line in apps.stdout.splitlines() if line.strip() and set(line.strip()) != {"─"}]
    assert header.split() == ["NAME", "STATUS", "RELEASE", "READY", "ROUTE"]
    assert rows[0].split()[:2] == ["orders", "progressing"]
    assert "http://orders.dev.shop.localhost:8080" in rows[0]
    projects = deployed("project", "list").stdout
    assert "DISPLAY NAME" in projects
    assert "shop" in projects


def test_empty_lists_say_so_on_stderr_and_json_is_an_empty_list(shop: Run) -> None:
    table = shop("apps", "shop/prod")
    assert table.exit_code == 0
    assert table.stdout == ""
    assert "No apps in shop/prod" in table.stderr
    assert json.loads(shop("apps", "shop/prod", "-o", "json").stdout) == []


def test_audit_passes_its_filters(deployed: Run, fake: FakeApi) -> None:
    result = deployed(
        "audit", "--project", "shop", "--action", "deploy", "--outcome", "success", "--limit", "5"
    )
    assert result.exit_code == 0
    assert dict(fake.requests[-1].url.params) == {
        "project": "shop",
        "action": "deploy",
        "outcome": "success",
        "limit": "5",
    }
    assert "deploy" in result.stdout


def test_unknown_output_format_is_a_usage_error(shop: Run) -> None:
    result = shop("project", "list", "-o", "xml")
    assert result.exit_code == 2
    assert "xml" in result.stderr


def test_show_commands_support_json_and_yaml(deployed: Run, fake: FakeApi) -> None:
    app = fake.apps[("shop", "dev", "orders")]
    assert json.loads(deployed("status", "shop/dev/orders", "-o", "json").stdout) == app
    assert yaml.safe_load(deployed("status", "shop/dev/orders", "-o", "yaml").stdout) == app
    assert json.loads(deployed("project", "show", "shop", "-o", "json").stdout) == fake.projects["shop"]
    assert json.loads(deployed("env", "show", "shop/dev", "-o", "json").stdout) == fake.envs[("shop", "dev")]
    text = deployed("status", "shop/dev/orders").stdout
    assert "progressing" in text
    assert "0/2 ready" in text
