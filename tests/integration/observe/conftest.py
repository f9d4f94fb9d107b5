from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.helpers import score
from yunzhou.observe import LogRetention, LogStore
from yunzhou.store import sqlite_url


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Logs live in their own store; the state DB only answers "does this app exist", so SQLite is enough."""
    return sqlite_url(tmp_path)


@pytest.fixture
def log_store(tmp_path: Path) -> Iterator[LogStore]:
    with LogStore(tmp_path / "logs" / "logs.db", retention=LogRetention(interval_s=3600)) as store:
        yield store


@pytest.fixture
def shop(api: Api, log_store: LogStore) -> Api:
    """The API with a log store, project shop, env dev and app orders deployed."""
    api.http.app.state.log_store = log_store  # type: ignore[attr-defined]
    assert api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    r = api.http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin)
    assert r.status_code == 201, r.text
    r = api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": score()}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    return api
