"""The console over an in-process API (SQLite): a browser-like TestClient whose console calls reach the
same app through the TestClient's transport, always with the signed-in user's token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api
from yunzhou.observe import LogStore
from yunzhou.services import ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


class InProcessTransport(httpx.BaseTransport):
    """Carries the console's API calls to the app in this process (what the network does in production)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


class Browser:
    """A cookie-keeping client with helpers to sign in and to submit forms with their CSRF token."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.http = TestClient(api.http.app, base_url="http://testserver", follow_redirects=False)

    def csrf(self, path: str = "/login") -> str:
        page = self.http.get(path, follow_redirects=True)
        match = CSRF_RE.search(page.text)
        assert match, page.text[:500]
        return match.group(1)

    def login(self, token: str) -> Browser:
        r = self.http.post("/login", data={"token": token, "csrf_token": self.csrf(), "next": "/projects"})
        assert r.status_code == 303, r.text
        return self

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.http.post(path, data={**data, "csrf_token": self.csrf("/projects")})


@pytest.fixture
def web_api(tmp_path: Path) -> Iterator[Api]:
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    api = Api(ControlPlane.create(db, data_dir))
    log_store = LogStore(tmp_path / "logs.db")
    api.http.app.state.log_store = log_store
    with api.http:
        # the console's own API calls go through the TestClient's in-process transport
        api.http.app.state.console.transport = InProcessTransport(api.http)
        api.http.app.state.console.api_url = "http://testserver"
        yield api
    log_store.close()
    db.dispose()


@pytest.fixture
def browser(web_api: Api) -> Iterator[Browser]:
    b = Browser(web_api)
    with b.http:
        yield b
