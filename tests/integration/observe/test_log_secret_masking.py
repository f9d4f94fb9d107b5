"""A developer cannot read a secret by making the app log it (issue 14, security item 8): a real
`yunzhou server` runs an app that prints its secret (from its environment) to stdout and stderr, in a JSON
field, percent- and base64-encoded; a developer — who may set secrets but not reveal them — reads `***`
through the API and `yunzhou logs`, grep finds nothing, and the log store's files never hold the value."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.helpers import score
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until

APP_DIR = Path(__file__).resolve().parents[1] / "local" / "apps" / "leaky"
SECRET = "Zq9-leak/me+7Hx"  # '/' and '+': its encodings differ from it and between base64 alphabets
SCORE = score(
    "web",
    command=["python3", "app.py"],
    variables={"API_KEY": "${resources.creds.API_KEY}", "PIN": "${resources.creds.PIN}"},
) | {"resources": {"creds": {"type": "secret"}}}
LEAKS = [  # every form the app prints the value in
    SECRET.encode(),
    quote(SECRET, safe="").encode(),
    base64.b64encode(f"svc:{SECRET}".encode()),
    json.dumps(SECRET).encode(),
]


def test_a_developer_reads_masked_logs_and_the_store_never_holds_the_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        ControlPlaneProcess(data, host_processes=True) as server,
        YunzhouClient(server.url, server.admin_token) as admin,
    ):
        admin.create_project("shop")
        admin.create_environment("shop", "dev")
        admin.set_secret("shop", "dev", "API_KEY", SECRET)
        admin.set_secret("shop", "dev", "PIN", "4242")  # shorter than 6 characters: not masked
        result = admin.deploy("shop", "dev", SCORE, None, admin.upload_artifact(APP_DIR))
        rollout = admin.wait_for_rollout("shop", "dev", "web", result["rollout"]["id"], timeout=120)
        assert rollout["state"] == "succeeded", rollout
        admin.set_member("shop", "dev1", "developer")
        token = admin.create_token("dev1", ["read", "write"], principal="dev1")["token"]

        with YunzhouClient(server.url, token) as developer:

            def logged() -> list[dict[str, Any]] | None:
                items: list[dict[str, Any]] = developer.get_logs("shop", "dev", "web", limit=100)["items"]
                return items if any(i["line"] == "ready" for i in items) else None

            items = wait_until("the app's log lines", logged, timeout=60)
            by_line = {i["line"]: i for i in items}
            assert by_line["starting with API_KEY=***"]["stream"] == "stdout"
            assert by_line["error: could not connect using ***"]["stream"] == "stderr"
            [json_line] = [i for i in items if i["line"].startswith("{")]
            assert json_line["fields"] == {"level": "info", "msg": "config loaded", "api_key": "***"}
            assert "GET https://api.example.test/v1?key=***" in by_line
            [basic] = [line for line in by_line if line.startswith("Authorization: Basic ")]
            assert "***" in basic
            assert "pin=4242" in by_line  # documented: values under 6 characters are not masked
            shown = json.dumps(items).encode()
            assert not [leak for leak in LEAKS if leak in shown]
            assert developer.get_logs("shop", "dev", "web", grep=SECRET)["items"] == []
            assert developer.get_logs("shop", "dev", "web", where=["api_key=***"])["items"] == [json_line]
            # only a maintainer may reveal it, as before
            assert "403" in _cli(server, token, "secret", "reveal", "shop/dev", "API_KEY", check=False)

        cli = _cli(server, token, "logs", "shop/dev/web")
        assert "starting with API_KEY=***" in cli
        assert SECRET not in cli

    # the server has stopped (its log store closed): not one byte of the value in any of its files
    files = [p for p in (data / "logs").rglob("*") if p.is_file()]
    stored = b"".join(p.read_bytes() for p in files)
    assert b"could not connect using ***" in stored  # the lines are there, in plain bytes
    assert not [leak for leak in LEAKS if leak in stored], files


def _cli(server: ControlPlaneProcess, token: str, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "yunzhou", *args], env=server.client_env(token) | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert not check or done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr
