"""Shared fixtures: a real PostgreSQL server per test session, stores on SQLite and PostgreSQL, and an
in-process API over a fresh control plane."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from yunzhou.api import create_app
from yunzhou.services import ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.testing import PostgresServer, start_postgres
from yunzhou.testing.k8s import K8sTestEnv

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with start_postgres(tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture(scope="session")
def k8s_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sTestEnv]:
    """A real control plane (etcd, kube-apiserver, controller-manager, scheduler) with 3 kwok nodes."""
    with K8sTestEnv(tmp_path_factory.mktemp("k8s")) as env:
        yield env


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend the store supports."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def control_plane(database: Database, tmp_path: Path) -> ControlPlane:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return ControlPlane.create(database, data_dir)


class Api:
    """An in-process API client with helpers to act as different callers."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.http = TestClient(create_app(cp), raise_server_exceptions=False)
        self.admin_token = cp.tokens.ensure_admin_token(cp.data_dir).read_text().strip()
        self.admin = self.headers(self.admin_token)

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def token_for(self, principal: str, scopes: tuple[str, ...] = ("read", "write")) -> dict[str, str]:
        r = self.http.post(
            "/api/v1/tokens",
            json={"name": f"{principal}-token", "scopes": list(scopes), "principal": principal},
            headers=self.admin,
        )
        assert r.status_code == 201, r.text
        return self.headers(r.json()["token"])

    def member(
        self, project: str, principal: str, role: str, scopes: tuple[str, ...] = ("read", "write")
    ) -> dict[str, str]:
        r = self.http.put(
            f"/api/v1/projects/{project}/members/{principal}", json={"role": role}, headers=self.admin
        )
        assert r.status_code == 200, r.text
        return self.token_for(principal, scopes)


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[Api]:
    client = Api(control_plane)
    with client.http:
        yield client


def pytest_report_header(config: pytest.Config) -> str:
    return f"yunzhou: CI={os.environ.get('CI', '')!r}"
