"""A new user's first session: a real `yunzhou server` process driven by the real `yunzhou` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from yunzhou.testing import ControlPlaneProcess

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


def cli(
    server: ControlPlaneProcess,
    *args: str,
    token: str | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yunzhou", *args],
        env=server.client_env(token) | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=60, input=stdin, cwd=cwd, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def test_first_session(server: ControlPlaneProcess, tmp_path: Path) -> None:
    ok(cli(server, "project", "create", "shop"))
    ok(cli(server, "env", "create", "shop/dev"))

    # a valid Score file (with its yunzhou.yaml beside it and the source uploaded) → release 1
    out = ok(cli(server, "deploy", "shop/dev", "-f", str(EXAMPLES / "orders" / "score.yaml"),
                 "--source", str(EXAMPLES / "orders")))  # fmt: skip
    assert "release 1" in out
    apps = json.loads(ok(cli(server, "apps", "shop/dev", "-o", "json")))
    assert [(a["name"], a["desired_release"], a["replicas"]) for a in apps] == [("orders", 1, 2)]

    # an invalid Score file → non-zero exit, the field paths in the message, still one release
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: score.dev/v1b1\nmetadata: {name: orders}\n"
        "containers:\n  web:\n    image: img\n    readinessProbe: {httpGet: {path: /, port: 99999}}\n"
        "service: {ports: {web: {port: 0}}}\n"
    )
    refused = cli(server, "deploy", "shop/dev", "-f", str(bad))
    assert refused.returncode != 0
    assert "containers.web.readinessProbe.httpGet.port" in refused.stderr
    assert "service.ports.web.port" in refused.stderr
    assert "Traceback" not in refused.stderr
    releases = json.loads(ok(cli(server, "releases", "shop/dev/orders", "-o", "json")))
    assert [r["number"] for r in releases] == [1]

    # a viewer token is refused on deploy (403), and says why
    ok(cli(server, "project", "add-member", "shop", "vera", "--role", "viewer"))
    viewer_token = ok(cli(server, "token", "create", "--name", "vera-laptop", "--scope", "read", "--scope",
                          "write", "--principal", "vera")).strip()  # fmt: skip
    assert viewer_token.startswith("yzt_")
    denied = cli(
        server, "deploy", "shop/dev", "-f", str(EXAMPLES / "orders" / "score.yaml"), token=viewer_token
    )
    assert denied.returncode != 0
    assert "viewer" in denied.stderr
    assert (
        json.loads(ok(cli(server, "apps", "shop/dev", "-o", "json", token=viewer_token)))[0]["name"]
        == "orders"
    )
    peek = cli(server, "render", "shop/dev/orders", "--show-secrets", token=viewer_token)
    assert peek.returncode != 0
    assert "only an admin" in peek.stderr

    # scale and rollback record intent
    ok(cli(server, "scale", "shop/dev/orders", "3"))
    # a redeploy without --source keeps the image release 1 was built into (image "." in the Score)
    redeployed = cli(
        server, "deploy", "shop/dev", "-f", str(EXAMPLES / "orders" / "score.yaml"), "--set", "replicas=4"
    )
    ok(redeployed)
    assert "this release keeps release 1's image shop/orders@sha256:" in " ".join(redeployed.stderr.split())
    assert "Warning" not in redeployed.stderr
    out = ok(cli(server, "rollback", "shop/dev/orders"))
    assert "3" in out
    releases = json.loads(ok(cli(server, "releases", "shop/dev/orders", "-o", "json")))
    assert [(r["number"], r["cause"]) for r in releases][:2] == [(3, "rollback to 1"), (2, "deploy")]

    # the audit trail lists each action with its actor and outcome — refusals included
    events = json.loads(ok(cli(server, "audit", "-o", "json", "--limit", "100")))
    seen = {(e["action"], e["actor"], e["outcome"]) for e in events}
    assert {
        ("project.create", "admin", "success"),
        ("env.create", "admin", "success"),
        ("app.deploy", "admin", "success"),
        ("app.deploy", "admin", "invalid"),
        ("app.deploy", "vera", "denied"),
        ("app.scale", "admin", "success"),
        ("app.rollback", "admin", "success"),
        ("member.set", "admin", "success"),
        ("token.create", "admin", "success"),
    } <= seen
    # nothing of the secrets leaks into the audit trail
    assert viewer_token not in json.dumps(events)
    assert server.admin_token not in json.dumps(events)


def test_admin_token_file_is_private_and_never_logged(server: ControlPlaneProcess) -> None:
    token_file = server.data_dir / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    ok(cli(server, "whoami"))
    assert server.admin_token not in server.log()


def test_server_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cp = ControlPlaneProcess(tmp_path / "data").start()
    assert cp.stop() == 0
    assert "Traceback" not in cp.log()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    cp = ControlPlaneProcess(tmp_path / "data")  # never started
    result = cli(cp, "project", "list", token="yzt_x")
    assert result.returncode != 0
    assert "yunzhou server" in result.stderr
    assert "Traceback" not in result.stderr
