"""The console calls its own API in process, never an address taken from the request (issue 14, security
item 9): a crafted Host header used to send the submitted token to that host and trust its answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api
from tests.integration.web.conftest import CSRF_RE
from yunzhou.testing import ControlPlaneProcess

FORGED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 45\r\nConnection: close\r\n\r\n"
    b'{"principal": "admin", "scopes": ["admin"]}  '
)


class FakeAttacker:
    """A loopback listener that records what reaches it and answers every request with a forged 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port: int = self.sock.getsockname()[1]
        self.received = bytearray()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(FORGED)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def console(web_api: Api) -> Api:
    """The console as `yunzhou server` runs it: without the test transport, so its default is used."""
    web_api.http.app.state.console.transport = None
    return web_api


@pytest.fixture
def attacker() -> Iterator[FakeAttacker]:
    fake = FakeAttacker()
    yield fake
    fake.close()


def _login(app: Api, host: str, token: str) -> tuple[int, str]:
    browser = TestClient(app.http.app, base_url=f"http://{host}", follow_redirects=False)
    with browser:
        page = browser.get("/login")
        match = CSRF_RE.search(page.text)
        assert match, page.text[:300]
        r = browser.post("/login", data={"token": token, "csrf_token": match.group(1), "next": "/projects"})
        return r.status_code, r.text


def test_a_crafted_host_header_gets_neither_the_token_nor_trust(console: Api, attacker: FakeAttacker) -> None:
    # a wrong token with Host pointing at the attacker: refused by the real API, nothing sent out
    status, body = _login(console, f"127.0.0.1:{attacker.port}", "yzt_forged-by-the-attacker")
    assert status == 401, body[:300]
    # the right token under a crafted Host still signs in, against the real API
    status, body = _login(console, "attacker.example:9", console.admin_token)
    assert status == 303, body[:300]
    status, body = _login(console, f"127.0.0.1:{attacker.port}", console.admin_token)
    assert status == 303, body[:300]
    assert bytes(attacker.received) == b""


def test_a_real_server_signs_in_under_a_crafted_host_without_calling_it(
    tmp_path: Path, attacker: FakeAttacker
) -> None:
    """The same through uvicorn (`yunzhou server`): the in-process calls run on the server's own loop."""
    with ControlPlaneProcess(tmp_path / "data", extra_args=("--no-runtime",)) as server:
        for host, token, expected in (
            (f"127.0.0.1:{attacker.port}", "yzt_forged-by-the-attacker", 401),
            (f"127.0.0.1:{attacker.port}", server.admin_token, 303),
        ):
            with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as browser:
                match = CSRF_RE.search(browser.get("/login").text)
                assert match
                form = {"token": token, "csrf_token": match.group(1), "next": "/projects"}
                assert browser.post("/login", data=form).status_code == expected
                if expected == 303:
                    assert browser.get("/projects").status_code == 200
    assert bytes(attacker.received) == b""
