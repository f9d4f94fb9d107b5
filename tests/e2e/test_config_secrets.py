"""Config and secrets for real: a `yunzhou server` process (SQLite or PostgreSQL), the real CLI, the router
and app processes. A canary secret set through the CLI reaches the app and nothing else."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from tests.integration.local.test_local_runtime import Load, wait_until
from yunzhou.store import Database, sqlite_url
from yunzhou.store.crypto import FileKeyring, SecretBox, SecretKeyError
from yunzhou.store.models import SecretVersion
from yunzhou.testing import ControlPlaneProcess, PostgresServer

pytestmark = pytest.mark.e2e
APP_DIR = Path(__file__).resolve().parents[1] / "integration" / "local" / "apps" / "config"
CANARY = "c4n4ry-7f3a9Q-never-leak-me"
SCORE = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "web"},
    "containers": {
        "web": {
            "image": "python:3.11-slim",
            "command": ["python3", "app.py"],
            "variables": {"DEBUG": "${resources.env.DEBUG}", "API_KEY": "${resources.creds.API_KEY}"},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        }
    },
    "resources": {"env": {"type": "environment"}, "creds": {"type": "secret"}},
}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Session:
    """The CLI and direct API calls against one server, keeping every response body the test receives."""

    def __init__(self, server: ControlPlaneProcess, tmp: Path) -> None:
        self.server = server
        self.received: list[str] = []
        self.score_file = tmp / "score.yaml"
        self.score_file.write_text(yaml.safe_dump(SCORE))

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "yunzhou", *args], env=self.server.client_env() | {"COLUMNS": "200"},
            capture_output=True, text=True, timeout=120, input=stdin, check=False,
        )  # fmt: skip
        self.received += [done.stdout, done.stderr]
        assert not check or done.returncode == 0, (
            f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def api(self, path: str) -> Any:
        r = httpx.get(
            f"{self.server.url}/api/v1{path}", headers={"Authorization": f"Bearer {self.server.admin_token}"}
        )
        self.received.append(r.text)
        return r.json()

    def app(self, env: str = "dev") -> dict[str, str]:
        r = httpx.get(
            f"http://127.0.0.1:{self.server.router_port}/", headers={"Host": f"web.{env}.shop.localhost"}
        )
        assert r.status_code == 200, r.text
        body: dict[str, str] = r.json()
        return body

    def serving(self, env: str = "dev") -> bool:
        host = f"web.{env}.shop.localhost"
        try:
            r = httpx.get(f"http://127.0.0.1:{self.server.router_port}/", headers={"Host": host})
        except httpx.TransportError:  # the router is starting
            return False
        return r.status_code == 200

    def deploy(self, env: str = "dev") -> None:
        self.cli("deploy", f"shop/{env}", "-f", str(self.score_file), "--source", str(APP_DIR), "--wait")

    def settled(self, env: str, release: int) -> None:
        wait_until(
            f"release {release} serving in {env}",
            lambda: self.api(f"/projects/shop/environments/{env}/apps/web").get("current_release") == release,
        )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, str], PostgresServer | None, str]]:
    if request.param == "sqlite":
        yield {}, None, ""
        return
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    name = "e2e_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    url = pg.create_database(name)
    yield {"YUNZHOU_DATABASE_URL": url}, pg, name
    pg.drop_database(name)


def test_a_canary_secret_reaches_the_app_and_nothing_else(
    tmp_path: Path, backend: tuple[dict[str, str], PostgresServer | None, str]
) -> None:
    env, pg, dbname = backend
    data = tmp_path / "data"
    with ControlPlaneProcess(data, env=env) as server:
        s = Session(server, tmp_path)
        s.cli("project", "create", "shop")
        s.cli("env", "create", "shop/dev")
        # deploying before the config exists: refused, naming the field and the fix
        refused = subprocess.run(
            [sys.executable, "-m", "yunzhou", "deploy", "shop/dev", "-f", str(s.score_file)],
            env=server.client_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "containers.web.variables.DEBUG" in refused.stderr
        assert "yunzhou config set shop/dev DEBUG=" in refused.stderr
        assert "yunzhou secret set shop/dev API_KEY" in refused.stderr

        s.cli("config", "set", "shop/dev", "DEBUG=on")
        s.cli("secret", "set", "shop/dev", "API_KEY", stdin=CANARY + "\n")
        s.deploy()
        assert s.app() == {"version": "on", "debug": "on", "key_sha256": sha(CANARY)}

        # a new value rolls the app; every read of it shows names and versions only
        s.cli("secret", "set", "shop/dev", "API_KEY", stdin=CANARY + "-v2")
        s.settled("dev", 2)
        assert s.app()["key_sha256"] == sha(CANARY + "-v2")
        s.cli("secret", "list", "shop/dev", "-o", "json")
        s.cli("releases", "shop/dev/web", "-o", "json")
        s.cli("release", "show", "shop/dev/web", "2")
        s.cli("release", "show", "shop/dev/web", "1", "-o", "json")
        s.cli("config", "shop/dev", "-o", "json")
        s.cli("audit", "-o", "json")
        s.cli("status", "shop/dev/web")
        s.cli("instances", "shop/dev/web", "-o", "json")
        s.cli("render", "shop/dev/web", "-o", "json", check=False)
        s.cli("logs", "shop/dev/web", check=False)
        s.api("/audit?limit=1000")
        s.api("/projects/shop/environments/dev/apps/web/releases/2")
        # rollback to release 1 brings back the first value (its secret version is kept)
        s.cli("rollback", "shop/dev/web", "--to", "1", "--wait")
        assert s.app()["key_sha256"] == sha(CANARY)
    dumped = pg.dump(dbname) if pg is not None else b""

    assert not [text for text in s.received if CANARY in text]
    assert CANARY not in server.log()
    # every file the control plane, router and supervisor wrote: logs, state.db + -wal, instance records
    for path in [p for p in data.rglob("*") if p.is_file() and "snapshots" not in p.parts]:
        assert CANARY.encode() not in path.read_bytes(), path
    assert (data / "router.log").exists()
    assert (data / "router-access.log").exists()
    if pg is None:
        assert (data / "state.db").exists()
    else:
        assert b"secret_versions" in dumped
        assert CANARY.encode() not in dumped


def test_rotate_key_restart_and_the_old_keyring_no_longer_decrypts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ControlPlaneProcess(data) as server:
        s = Session(server, tmp_path)
        s.cli("project", "create", "shop")
        s.cli("env", "create", "shop/dev")
        s.cli("config", "set", "shop/dev", "DEBUG=1")
        s.cli("secret", "set", "shop/dev", "API_KEY", stdin=CANARY)
        s.deploy()
        shutil.copy(data / "secret-keys", tmp_path / "old-keys")
        out = s.cli("secret", "rotate-key")
        assert "1 re-encrypted" in out
    with ControlPlaneProcess(data) as server:  # a restart: the new key is read from the keyring file
        s = Session(server, tmp_path)
        # served again through the router (the stored ready_replicas is the last run's until the first pass)
        wait_until("the app back after the restart", s.serving)
        assert s.app()["key_sha256"] == sha(CANARY)
        s.cli("deploy", "shop/dev", "-f", str(s.score_file), "--source", str(APP_DIR), "--wait")
        s.settled("dev", 2)
        assert s.app()["key_sha256"] == sha(CANARY)
    db = Database(sqlite_url(data))
    with db.transaction() as session:
        versions = list(session.scalars(select(SecretVersion)))
        blobs = [(v.key_id, v.ciphertext, f"secret:{v.secret_id}:{v.version}".encode()) for v in versions]
    db.dispose()
    (tmp_path / "old-keys").chmod(0o600)
    old, new = SecretBox(FileKeyring(tmp_path / "old-keys")), SecretBox(FileKeyring(data / "secret-keys"))
    assert [new.decrypt(*b).decode() for b in blobs] == [CANARY]
    for blob in blobs:
        with pytest.raises(SecretKeyError):
            old.decrypt(*blob)
    assert json.loads((data / "secret-keys").read_text())["current"] == blobs[0][0]


def test_promotion_same_score_each_environments_values_and_a_config_change_under_load(tmp_path: Path) -> None:
    with ControlPlaneProcess(tmp_path / "data") as server:
        s = Session(server, tmp_path)
        s.cli("project", "create", "shop")
        for env, debug in (("dev", "dev-1"), ("prod", "prod-1")):
            s.cli("env", "create", f"shop/{env}")
            s.cli("config", "set", f"shop/{env}", f"DEBUG={debug}")
            s.cli("secret", "set", f"shop/{env}", "API_KEY", stdin=f"{CANARY}-{env}")
            s.deploy(env)
        assert s.app("dev") == {"version": "dev-1", "debug": "dev-1", "key_sha256": sha(f"{CANARY}-dev")}
        assert s.app("prod") == {"version": "prod-1", "debug": "prod-1", "key_sha256": sha(f"{CANARY}-prod")}

        s.cli("scale", "shop/prod/web", "3", "--wait")
        with Load(f"127.0.0.1:{server.router_port}", "web.prod.shop.localhost") as load:
            wait_until("some traffic", lambda: len(load.results) > 20)
            assert "new release: web 2" in s.cli("config", "set", "shop/prod", "DEBUG=prod-2")
            s.settled("prod", 2)
            seen = len(load.results)
            wait_until("traffic after the rollout", lambda: len(load.results) > seen + 20)
        outcomes = Counter(load.results)
        assert set(outcomes) <= {"prod-1", "prod-2"}, outcomes  # zero failed requests
        assert load.results[-1] == "prod-2"
        assert s.app("dev")["debug"] == "dev-1"
        releases = s.api("/projects/shop/environments/prod/apps/web/releases")["items"]
        assert releases[0]["cause"] == "config: DEBUG changed"
        assert releases[0]["changes"] == ["config.vars.DEBUG: changed"]
