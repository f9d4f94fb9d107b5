"""An uploaded kubeconfig cannot make the control plane run a command or read a file on its host (issue 14,
security item 6): exec plugins, auth-provider and file references are refused with 422 naming the field,
before anything connects; nothing is stored. Exec plugins run only when the operator enables them."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from yunzhou.domain.errors import PermanentError
from yunzhou.reconcile.clusters import ClusterDirectory
from yunzhou.server import cluster_probe
from yunzhou.services import ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.store.models import Cluster

V1 = "/api/v1"


class Stranger:
    """A server someone else runs: it answers like an API server and keeps every Authorization header."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        seen = self.authorizations

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization", ""))
                body = json.dumps({"gitVersion": "v1.31.0", "items": [], "metadata": {}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Stranger:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def kubeconfig(server: str, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
    }


def exec_plugin(marker: Path, tmp_path: Path) -> dict[str, Any]:
    """A credential plugin that leaves ``marker`` behind (with the uid it ran as) when it runs."""
    script = tmp_path / "plugin.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"id > {marker}\n"
        'echo \'{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",'
        '"status":{"token":"from-plugin"}}\'\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}


@pytest.fixture
def probes() -> list[str]:
    return []


def _api(tmp_path: Path, probes: list[str], *, kubeconfig_exec: bool) -> Iterator[Api]:
    def probe(name: str, doc: dict[str, Any], context: str | None) -> Any:
        probes.append(name)
        return cluster_probe(name, doc, context, allow_exec=kubeconfig_exec)

    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(db, tmp_path / "data", cluster_probe=probe, kubeconfig_exec=kubeconfig_exec)
    api = Api(cp)
    with api.http:
        yield api
    db.dispose()


@pytest.fixture
def api(tmp_path: Path, probes: list[str]) -> Iterator[Api]:
    yield from _api(tmp_path, probes, kubeconfig_exec=False)


@pytest.fixture
def api_exec_enabled(tmp_path: Path, probes: list[str]) -> Iterator[Api]:
    yield from _api(tmp_path, probes, kubeconfig_exec=True)


def _refused(api: Api, doc: dict[str, Any], path: str) -> str:
    r = api.http.post(f"{V1}/clusters", json={"name": "prod", "kubeconfig": doc}, headers=api.admin)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert path in [p["path"] for p in error["problems"]], error
    assert api.http.get(f"{V1}/clusters", headers=api.admin).json()["items"] == []
    message: str = next(p["message"] for p in error["problems"] if p["path"] == path)
    return message


def test_exec_plugin_is_refused_and_never_runs(api: Api, tmp_path: Path, probes: list[str]) -> None:
    marker = tmp_path / "ran-as"
    with Stranger() as stranger:
        doc = kubeconfig(stranger.url, {"exec": exec_plugin(marker, tmp_path)})
        message = _refused(api, doc, "kubeconfig.users[0].user.exec")
    assert "token" in message
    assert "YUNZHOU_KUBECONFIG_EXEC" in message
    assert not marker.exists()
    assert (probes, stranger.authorizations) == ([], [])


def test_auth_provider_is_refused(api: Api, probes: list[str]) -> None:
    doc = kubeconfig("https://127.0.0.1:1", {"auth-provider": {"name": "oidc", "config": {}}})
    message = _refused(api, doc, "kubeconfig.users[0].user.auth-provider")
    assert "client-certificate-data" in message
    assert probes == []


def test_token_file_naming_the_admin_token_is_refused_and_never_sent(api: Api, probes: list[str]) -> None:
    admin_token = api.cp.data_dir / "admin-token"
    with Stranger() as stranger:
        doc = kubeconfig(stranger.url, {"tokenFile": str(admin_token)})
        message = _refused(api, doc, "kubeconfig.users[0].user.tokenFile")
    assert "`token`" in message
    assert probes == []
    assert stranger.authorizations == []  # before the fix: ["Bearer yzt_…"], the admin token


def test_client_key_and_ca_files_are_refused_with_every_path(
    api: Api, tmp_path: Path, probes: list[str]
) -> None:
    key = api.cp.data_dir / "keyring"
    doc = kubeconfig(
        "https://127.0.0.1:1",
        {"client-certificate": str(tmp_path / "cert.pem"), "client-key": str(key)},
        {"certificate-authority": "/etc/ssl/certs/ca-certificates.crt"},
    )
    message = _refused(api, doc, "kubeconfig.users[0].user.client-key")
    assert "client-key-data" in message
    r = api.http.post(f"{V1}/clusters", json={"name": "prod", "kubeconfig": doc}, headers=api.admin)
    paths = {p["path"] for p in r.json()["error"]["problems"]}
    assert paths == {
        "kubeconfig.users[0].user.client-certificate",
        "kubeconfig.users[0].user.client-key",
        "kubeconfig.clusters[0].cluster.certificate-authority",
    }
    assert probes == []


def test_exec_plugins_run_only_when_the_operator_enables_them(
    api_exec_enabled: Api, tmp_path: Path, probes: list[str]
) -> None:
    marker = tmp_path / "ran-as"
    with Stranger() as stranger:
        doc = kubeconfig(stranger.url, {"exec": exec_plugin(marker, tmp_path)})
        r = api_exec_enabled.http.post(
            f"{V1}/clusters", json={"name": "prod", "kubeconfig": doc}, headers=api_exec_enabled.admin
        )
    assert r.status_code == 201, r.text
    assert marker.exists()
    assert stranger.authorizations[0] == "Bearer from-plugin"
    # file references stay refused even then
    doc = kubeconfig("https://127.0.0.1:1", {"tokenFile": "/etc/hostname"})
    r = api_exec_enabled.http.post(
        f"{V1}/clusters", json={"name": "other", "kubeconfig": doc}, headers=api_exec_enabled.admin
    )
    assert r.status_code == 422, r.text
    assert probes == ["prod"]


def test_a_stored_kubeconfig_with_exec_is_never_run_by_the_reconciler(api: Api, tmp_path: Path) -> None:
    """Registered before the API refused it: connecting fails as a permanent error and runs nothing."""
    marker = tmp_path / "ran-as"
    doc = kubeconfig("https://127.0.0.1:1", {"exec": exec_plugin(marker, tmp_path)})
    box = api.cp.ctx.secret_box
    assert box is not None
    now = api.cp.ctx.clock()
    with api.cp.ctx.db.transaction() as s:
        s.add(
            Cluster(
                name="old",
                server="https://127.0.0.1:1",
                server_version="v1.30.0",
                context="c",
                base_domain="old.localhost",
                kubeconfig_ciphertext=box.seal(json.dumps(doc).encode()),
                created_at=now,
                created_by="admin",
            )
        )
    directory = ClusterDirectory(api.cp.ctx.db, box)
    with pytest.raises(PermanentError) as refused:
        directory.connect("old")
    assert "kubeconfig.users[0].user.exec" in str(refused.value)
    assert not marker.exists()
    directory.close()
