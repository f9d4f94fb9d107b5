"""token, whoami, projects and environments, and where the CLI finds its token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.conftest import ADMIN_TOKEN, Run
from tests.unit.client.fake_api import FakeApi
from yunzhou.cli.admin import parse_expires


def test_token_create_prints_only_the_token_on_stdout(run: Run, fake: FakeApi) -> None:
    result = run("token", "create", "--name", "ci", "--scope", "read", "--scope", "write", "--expires", "12h")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert token in fake.tokens
    assert "shown only this once" in result.stderr
    assert fake.bodies("POST", "/tokens")[-1] == {
        "name": "ci",
        "scopes": ["read", "write"],
        "expires_in_seconds": 12 * 3600,
    }
    whoami = run("whoami", "-o", "json", token=token)
    assert json.loads(whoami.stdout)["scopes"] == ["read", "write"]


def test_token_create_for_a_principal_that_never_expires(run: Run, fake: FakeApi) -> None:
    result = run(
        "token", "create", "--name", "bot", "--scope", "admin", "--expires", "never", "--principal", "bot"
    )
    assert result.exit_code == 0
    assert fake.bodies("POST", "/tokens")[-1] == {
        "name": "bot",
        "scopes": ["admin"],
        "expires_in_seconds": None,
        "principal": "bot",
    }


def test_token_create_needs_a_scope_and_a_valid_lifetime(run: Run, fake: FakeApi) -> None:
    assert run("token", "create", "--name", "ci").exit_code == 2
    assert run("token", "create", "--name", "ci", "--scope", "root").exit_code == 2
    bad = run("token", "create", "--name", "ci", "--scope", "read", "--expires", "soon")
    assert bad.exit_code == 2
    assert "30d" in bad.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("3600", 3600), ("2w", 14 * 86400), ("never", None)],
)
def test_parse_expires(text: str, seconds: int | None) -> None:
    assert parse_expires(text) == seconds


def test_token_revoke(run: Run, fake: FakeApi) -> None:
    token = run("token", "create", "--name", "ci", "--scope", "read").stdout.strip()
    token_id = fake.tokens[token]["id"]
    result = run("token", "revoke", token_id)
    assert (result.exit_code, result.stdout) == (0, f"Revoked token {token_id}\n")
    assert run("whoami", token=token).exit_code == 1
    missing = run("token", "revoke", "tok-none")
    assert missing.exit_code == 1
    assert "`yunzhou token list`" in missing.stderr


def test_whoami_text(run: Run) -> None:
    assert run("project", "create", "shop").exit_code == 0
    result = run("whoami")
    assert result.exit_code == 0
    assert "admin" in result.stdout
    assert "shop: owner" in result.stdout


def test_token_file_fallback(run: Run, tmp_path: Path) -> None:
    """No YUNZHOU_TOKEN: the CLI reads <data dir>/admin-token (default .yunzhou in the current dir)."""
    data_dir = tmp_path / ".yunzhou"
    data_dir.mkdir()
    (data_dir / "admin-token").write_text(ADMIN_TOKEN + "\n")
    result = run("whoami", "-o", "json", config=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["principal"] == "admin"


def test_token_file_in_yunzhou_data_dir(run: Run, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "admin-token").write_text(ADMIN_TOKEN)
    result = run("whoami", config=False, env={"YUNZHOU_DATA_DIR": str(tmp_path / "state")})
    assert result.exit_code == 0, result.output


def test_env_token_wins_and_is_named_when_refused(run: Run, tmp_path: Path) -> None:
    (tmp_path / ".yunzhou").mkdir()
    (tmp_path / ".yunzhou" / "admin-token").write_text(ADMIN_TOKEN)
    result = run("whoami", config=False, env={"YUNZHOU_TOKEN": "stale"})
    assert result.exit_code == 1
    assert "the token in YUNZHOU_TOKEN was refused" in result.stderr


def test_no_token_anywhere(run: Run, tmp_path: Path) -> None:
    result = run("project", "list", config=False)
    assert result.exit_code == 1
    assert "YUNZHOU_TOKEN is unset" in result.stderr
    assert str(tmp_path / ".yunzhou" / "admin-token") in result.stderr


def test_project_and_environment_lifecycle(run: Run, fake: FakeApi) -> None:
    assert run("project", "create", "shop", "--display-name", "Shop 商店").stdout == "Created project shop\n"
    assert fake.projects["shop"]["display_name"] == "Shop 商店"
    assert run("project", "add-member", "shop", "alice", "--role", "developer").stdout == (
        "alice is now developer of project shop\n"
    )
    assert run("project", "add-member", "shop", "bob", "--role", "boss").exit_code == 2
    assert run("project", "remove-member", "shop", "alice").stdout == "Removed alice from project shop\n"
    created = run("env", "create", "shop/dev", "--target", "local", "--namespace", "shop-dev")
    assert created.stdout == "Created environment shop/dev (target local)\n"
    assert fake.envs[("shop", "dev")]["namespace"] == "shop-dev"
    assert "local" in run("env", "show", "shop/dev").stdout
    assert "Shop 商店" in run("project", "show", "shop").stdout
    refused = run("project", "delete", "shop")
    assert refused.exit_code == 1
    assert "still has environments" in refused.stderr
    assert run("env", "delete", "shop/dev").stdout == "Deleted environment shop/dev\n"
    stale = run("project", "delete", "shop", "--version", "7")
    assert stale.exit_code == 1
    assert "HTTP 409 conflict" in stale.stderr
    assert run("project", "delete", "shop", "--version", "1").stdout == "Deleted project shop\n"
