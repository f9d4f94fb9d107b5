"""Errors: a readable message on stderr, each field problem, a hint, exit 1 (2 for usage), no traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.unit.cli.conftest import CLEAN_ENV, Run
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig


def _clean(text: str) -> str:
    """Panel text without box drawing or line wrapping, for substring checks."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", " ").split())


def test_invalid_score_lists_each_problem_and_exits_1(shop: Run, tmp_path: Path) -> None:
    score = tmp_path / "bad.yaml"
    score.write_text("metadata:\n  name: orders\ncontainers:\n  web: {}\n  worker:\n    command: [run]\n")
    result = shop("deploy", "shop/dev", "-f", str(score))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Error: Score file is invalid" in result.stderr
    assert "  - containers.web.image: required" in result.stderr
    assert "  - containers.worker.image: required" in result.stderr
    assert "HTTP 422 invalid, request req-" in result.stderr
    assert "Traceback" not in result.output


def test_unauthenticated_hints_at_the_token(run: Run, tmp_path: Path) -> None:
    result = run("project", "list", token=None)
    assert result.exit_code == 1
    assert "Error: missing, unknown, revoked or expired token" in result.stderr
    assert "Hint: set YUNZHOU_TOKEN or run on the server machine" in result.stderr
    assert str(tmp_path / ".yunzhou" / "admin-token") in result.stderr


def test_refused_env_token_says_so(run: Run) -> None:
    result = run("whoami", token="wrong")
    assert result.exit_code == 1
    assert "the token in YUNZHOU_TOKEN was refused" in result.stderr


def test_unknown_project_hints_at_project_list(run: Run) -> None:
    result = run("project", "show", "nope")
    assert result.exit_code == 1
    assert "Error: project 'nope' not found" in result.stderr
    assert "Hint: `yunzhou project list`" in result.stderr


def test_unknown_app_hints_at_apps(shop: Run) -> None:
    result = shop("status", "shop/dev/ghost")
    assert result.exit_code == 1
    assert "app shop/dev/ghost not found" in result.stderr
    assert "Hint: `yunzhou apps shop/dev` shows its apps" in result.stderr


def test_conflict_exits_1(shop: Run) -> None:
    result = shop("project", "create", "shop")
    assert result.exit_code == 1
    assert "Error: project 'shop' already exists" in result.stderr
    assert "HTTP 409 conflict" in result.stderr


def test_forbidden_hints_at_whoami(run: Run, fake: object) -> None:
    created = run("token", "create", "--name", "ro", "--scope", "read")
    result = run("project", "create", "shop", token=created.stdout.strip())
    assert result.exit_code == 1
    assert "token scope write is required" in result.stderr
    assert "`yunzhou whoami`" in result.stderr


def test_unreachable_server_says_how_to_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    state = CliState(config=ClientConfig(url="http://127.0.0.1:7070"), transport=httpx.MockTransport(refuse))
    result = CliRunner().invoke(app, ["project", "list"], obj=state, env=CLEAN_ENV)
    assert result.exit_code == 1
    assert "not reachable at http://127.0.0.1:7070" in result.stderr
    assert "yunzhou server" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("status", "shop/dev"), "'shop/dev' is not an address of the form PROJECT/ENV/APP"),
        (("apps", "shop"), "'shop' is not an address of the form PROJECT/ENV, e.g. shop/dev"),
        (("status", "Shop/dev/a_b"), "app.project: 'Shop' must be a DNS label"),
        (("status", "Shop/dev/a_b"), "app.app: 'a_b' must be a DNS label"),
        (("env", "create", "shop/Dev"), "environment.env: 'Dev' must be a DNS label"),
        (("project", "create", "My_Shop"), "project name 'My_Shop' must be a DNS label"),
    ],
)
def test_addresses_are_validated_before_any_request(
    run: Run, fake: object, args: tuple[str, ...], expected: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert expected in _clean(result.stderr)
    assert fake.requests == []  # type: ignore[attr-defined]


def test_yaml_syntax_errors_name_line_and_column(shop: Run, tmp_path: Path) -> None:
    score = tmp_path / "score.yaml"
    score.write_text("metadata:\n  name: orders\ncontainers:\n  web:\n    image: [unclosed\n")
    result = shop("deploy", "shop/dev", "-f", str(score))
    assert result.exit_code == 1
    assert f"Error: Score file {score} is not valid YAML" in result.stderr
    assert f"  - {score}:6:1:" in result.stderr


def test_non_mapping_score_is_refused(shop: Run, tmp_path: Path) -> None:
    score = tmp_path / "score.yaml"
    score.write_text("- just\n- a list\n")
    result = shop("deploy", "shop/dev", "-f", str(score))
    assert result.exit_code == 1
    assert "must be a mapping at the top level" in result.stderr


def test_missing_score_file_is_a_usage_error(shop: Run) -> None:
    result = shop("deploy", "shop/dev", "-f", "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml" in _clean(result.stderr)


@pytest.mark.parametrize("bad", ["replicas", "=3", "rollout..maxSurge=2"])
def test_malformed_set_is_a_usage_error(shop: Run, score_file: Path, bad: str) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--set", bad)
    assert result.exit_code == 2
    assert "--set" in _clean(result.stderr)


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("scale", "shop/dev/orders", "many").exit_code == 2
    assert run("no-such-command").exit_code == 2
