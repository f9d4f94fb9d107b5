"""Security (issue 14, item 1; issue 15): an app on the local target runs as a user of its own and cannot
read the control plane's data dir (admin token, keyring, database, router files), another app's
environment or release, or the control plane's and router's /proc/<pid>/environ, and cannot take over
the router's admin API. A real server, router and instances, in both instance modes:

- ``container`` (the server's default): each app is built from its source into an image (`deploy
  --source`, through the CLI) and runs as a runc container. The attempts fail because the container
  shows none of it (its own mount, pid and network namespaces): paths are missing, not merely refused,
  and the router's admin port is out of reach even at the bridge's gateway.
- ``process`` (the development opt-in): host processes; the same attempts fail on permissions (a uid
  per app, a 0700 data dir) and the admin port answers 401 without the admin token."""

from __future__ import annotations

import ast
import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

APPS = Path(__file__).parent / "apps"
DEADLINE = 90.0
SERVER_MARKER = "cp-environ-" + secrets.token_hex(8)  # only in the control plane's environment
VICTIM_SECRET = "victim-secret-" + secrets.token_hex(8)  # only in the victim app's environment
VICTIM_HOST = "vault.dev.bank.localhost"


def score(name: str, variables: dict[str, str], resources: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"main": {"image": "python:3.11-slim", "command": ["python3", "app.py"],
                                "variables": variables}},
    }  # fmt: skip
    if resources:
        doc["resources"] = resources
    return doc


@pytest.fixture(params=["container", "process"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(tmp_path: Path, mode: str) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(
        tmp_path / "data",
        env={"CONTROL_PLANE_MARKER": SERVER_MARKER},
        host_processes=mode == "process",
        startup_timeout=90,
    ) as cp:
        yield cp


def deploy(server: ControlPlaneProcess, mode: str, project: str, doc: dict[str, Any], source: Path) -> None:
    """As a user would: the CLI's ``deploy --source`` (built into an image) or, on a development server,
    the source uploaded as it is."""
    with YunzhouClient(server.url, server.admin_token) as client:
        if mode == "process":
            result = client.deploy(project, "dev", doc, None, client.upload_artifact(source))
            rollout = client.wait_for_rollout(
                project,
                "dev",
                doc["metadata"]["name"],
                result["rollout"]["id"],
                timeout=DEADLINE,
                interval=0.2,
            )
            assert rollout["state"] == "succeeded", rollout
            return
    score_file = server.data_dir.parent / f"{project}-{doc['metadata']['name']}.yaml"
    score_file.write_text(yaml.safe_dump(doc))
    deployed = subprocess.run(
        [sys.executable, "-m", "yunzhou", "deploy", f"{project}/dev", "-f", str(score_file),
         "--source", str(source), "--stack", "python", "--wait"],
        env=server.client_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def app_pid(pid: int) -> int:
    """The app's own process under an instance's pid: a host process is the app; a container's instance
    pid is ``runc run``, whose child is the container's init (tini), whose child is the app."""
    while True:
        children = [
            int(c)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
        if not children:
            return pid
        pid = children[0]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_an_app_cannot_read_the_control_planes_secrets_or_another_projects_app(
    server: ControlPlaneProcess, mode: str
) -> None:
    data = server.data_dir
    with YunzhouClient(server.url, server.admin_token) as client:
        for project in ("bank", "mallory"):
            client.create_project(project)
            client.create_environment(project, "dev")
        client.set_secret("bank", "dev", "DB_PASSWORD", VICTIM_SECRET)
        victim_doc = score("vault", {"DB_PASSWORD": "${resources.creds.DB_PASSWORD}", "APP_VERSION": "v1"},
                           {"creds": {"type": "secret"}})  # fmt: skip
        deploy(server, mode, "bank", victim_doc, APPS / "web")
        (victim,) = client.list_instances("bank", "dev", "vault")
        victim_pid = app_pid(int(victim["pid"]))
        assert VICTIM_SECRET.encode() in Path(f"/proc/{victim_pid}/environ").read_bytes()  # root reads it
        victim_release = os.readlink(f"/proc/{victim_pid}/cwd")
        victim_home = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{victim_pid}/environ").read_bytes().decode().split("\0")
            if "=" in item
        )["HOME"]
        if mode == "container":  # its cwd and HOME inside its container: seen from the host through its root
            victim_release = f"/proc/{victim_pid}/root{victim_release}"
            victim_home = f"/proc/{victim_pid}/root{victim_home}"
        router_pid = int((data / "router.pid").read_text())
        files = {
            "admin-token": data / "admin-token",
            "keyring": data / "secret-keys",
            "database": data / "state.db",
            "caller-token-key": data / "caller-token.key",
            "router-log": data / "router.log",
            "router-access-log": data / "router-access.log",
            "victim-environ": Path(f"/proc/{victim_pid}/environ"),
            "control-plane-environ": Path(f"/proc/{server.process.pid}/environ"),  # type: ignore[union-attr]
            "router-environ": Path(f"/proc/{router_pid}/environ"),
        }
        dirs = {
            "data-dir": data,
            "log-store": data / "logs",
            "victim-release": Path(victim_release),
            "victim-home": Path(victim_home),
            "victim-cwd": Path(f"/proc/{victim_pid}/cwd"),
        }
        for path in [*files.values(), *dirs.values()]:
            assert path.exists(), f"{path} must exist for the attempt to mean something"
        attacker_doc = score("attacker", {
            "PROBE_FILES": json.dumps({k: str(v) for k, v in files.items()}),
            "PROBE_DIRS": json.dumps({k: str(v) for k, v in dirs.items()}),
        })  # fmt: skip
        deploy(server, mode, "mallory", attacker_doc, APPS / "attacker")
        (attacker,) = client.list_instances("mallory", "dev", "attacker")

        def report() -> list[str]:
            lines = [r["line"] for r in client.get_logs("mallory", "dev", "attacker", limit=500)["items"]]
            return lines if any(line.startswith("HOME ") for line in lines) else []

        lines = polling.wait_until("the attacker's report in its logs", report, DEADLINE)
    text = "\n".join(lines)
    for label in [*files, *dirs, "release-write"]:
        (outcome,) = [line for line in lines if line.startswith(f"PROBE {label}: ")]
        # a host process is refused by permissions; a container does not even see the path (a read-only
        # root for its own release)
        refused = (
            ("PermissionError",)
            if mode == "process"
            else ("PermissionError", "FileNotFoundError", "OSError(30")
        )
        assert outcome.startswith(tuple(f"PROBE {label}: refused {r}" for r in refused)), outcome
    (scan,) = [line for line in lines if line.startswith("SCAN readable environ of other processes: ")]
    readable = ast.literal_eval(scan.partition(": ")[2])
    # in a container only its own init (tini, pid 1, started with the app's own environment) is there
    assert [pid for pid, _ in readable] == ([] if mode == "process" else ["1"]), text
    secret_values = [
        VICTIM_SECRET,
        SERVER_MARKER,
        server.admin_token,
        (data / "caller-token.key").read_text().strip(),
        *json.loads((data / "secret-keys").read_text())["keys"].values(),
    ]
    for value in secret_values:
        assert value not in text
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # nothing below it is reachable by another user

    # who they ran as: not root, not each other, no groups; a private HOME with umask 077
    victim_uid = proc_status(victim_pid)["Uid"].split()
    attacker_uid = proc_status(app_pid(int(attacker["pid"])))["Uid"].split()
    assert len(set(victim_uid)) == len(set(attacker_uid)) == 1  # real, effective, saved, fs: all the same
    assert victim_uid[0] != "0"
    assert attacker_uid[0] != "0"
    assert victim_uid[0] != attacker_uid[0]
    assert proc_status(app_pid(int(attacker["pid"])))["Groups"] == ""
    (home,) = [line for line in lines if line.startswith("HOME ")]
    if mode == "process":
        assert home == f"HOME 0o600 uid={attacker_uid[0]} gid={attacker_uid[0]} groups=[]"
    else:  # HOME is the container's own /tmp
        assert home.endswith(f" uid={attacker_uid[0]} gid={attacker_uid[0]} groups=[]"), home

    if mode == "process":
        server.stop()
        assert not Path(victim_release).exists()  # the instance root is removed with the server


def victim_route(admin: httpx.Client) -> dict[str, Any]:
    (found,) = [r for r in admin.get("/config").json()["routes"] if r["host"] == VICTIM_HOST]
    return dict(found)


def served(server: ControlPlaneProcess) -> bytes:
    url = f"http://127.0.0.1:{server.router_port}/"
    return httpx.get(url, headers={"Host": VICTIM_HOST}, timeout=10, trust_env=False).content


def test_an_app_that_reaches_the_router_admin_port_cannot_reroute_or_read_it(
    server: ControlPlaneProcess, mode: str
) -> None:
    with YunzhouClient(server.url, server.admin_token) as client, server.router_admin() as admin:
        for project in ("bank", "mallory"):
            client.create_project(project)
            client.create_environment(project, "dev")
        deploy(server, mode, "bank", score("vault", {"APP_VERSION": "v1"}), APPS / "web")
        before = victim_route(admin)
        assert b'"version": "v1"' in served(server)

        # a host process dials loopback; a container the bridge's gateway (loopback is its own)
        where = "127.0.0.1" if mode == "process" else "10.213.0.1"
        attacker = score(
            "rerouter",
            {"ADMIN_PORT": str(admin.base_url.port), "ADMIN_HOST": where, "VICTIM_HOST": VICTIM_HOST},
        )
        deploy(server, mode, "mallory", attacker, APPS / "rerouter")

        def report() -> list[str]:
            lines = [r["line"] for r in client.get_logs("mallory", "dev", "rerouter", limit=500)["items"]]
            return lines if "DONE" in lines else []

        lines = polling.wait_until("the rerouter's report in its logs", report, DEADLINE)
        attempts = [line for line in lines if line.startswith("ADMIN ")]
        assert len(attempts) == 5, lines
        for line in attempts:
            if mode == "process":  # every try, the token-less and the guessed one, got 401 and nothing else
                assert ": 401 " in line, line
                assert "unauthenticated" in line, line
            else:  # the admin port is not reachable from a container at all
                assert ": 0 " in line, line
        assert victim_route(admin) == before  # the routes are intact...
        assert admin.get("/config").json()["version"] < 2**52
        assert b'"version": "v1"' in served(server)  # ...and the victim's host still reaches the victim
        refused = [
            line
            for line in admin.get("/metrics").text.splitlines()
            if line.startswith("yunzhou_router_admin_")
        ]
        expected = 5 if mode == "process" else 0
        assert refused in (
            [f"yunzhou_router_admin_unauthorized_total {expected}"],
            [] if expected == 0 else None,
        ), refused
