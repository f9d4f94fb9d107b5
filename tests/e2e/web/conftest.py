"""Shared by the console's browser tests: headless Debian Chromium (Playwright), a real `yunzhou server`
process, a project with a developer and a viewer, and sign-in/screenshot helpers."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect, sync_playwright

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.web import static_dir

CHROMIUM = "/usr/bin/chromium"
APP_SOURCE = Path(__file__).resolve().parents[2] / "integration" / "local" / "apps" / "web"
DEADLINE_MS = 60_000
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    assert (static_dir() / "dist" / "htmx.min.js").exists(), "console assets are not built: run `make web`"
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    # launch() gives Chromium a fresh temporary profile (user data dir) of its own and removes it after
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", host_processes=True) as cp:
        yield cp


@pytest.fixture
def tokens(server: ControlPlaneProcess) -> dict[str, str]:
    """shop/dev with a developer (dana) and a viewer (vera), each with a read+write token."""
    with YunzhouClient(server.url, server.admin_token) as admin:
        admin.create_project("shop")
        admin.create_environment("shop", "dev")
        out = {}
        for principal, role in (("dana", "developer"), ("vera", "viewer")):
            admin.set_member("shop", principal, role)
            out[principal] = admin.create_token(f"{principal}-console", ["read", "write"], None, principal)[
                "token"
            ]
        return out


def screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("YUNZHOU_SCREENSHOT_DIR") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def login(page: Page, server: ControlPlaneProcess, token: str) -> None:
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/projects$"))


def deploy_web(server: ControlPlaneProcess, token: str) -> None:
    """shop/dev/web: the test app from its source, on port 8080, ready."""
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
        "service": {"ports": {"web": {"port": 8080, "targetPort": 8080}}},
    }
    with YunzhouClient(server.url, token) as dana:
        deployment = dana.deploy("shop", "dev", score, None, dana.upload_artifact(APP_SOURCE))
        rollout = dana.wait_for_rollout("shop", "dev", "web", deployment["rollout"]["id"], timeout=60)
        assert rollout["state"] == "succeeded", rollout


@contextmanager
def traffic(server: ControlPlaneProcess, *, limit: int = 2000) -> Iterator[list[int]]:
    """Requests through the router, as the app's users would send them, from a thread: about 20 a second,
    at most ``limit``, until the block ends. Yields the status codes seen so far."""
    stop, codes = threading.Event(), list[int]()

    def run() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.router_port}", timeout=10) as http:
            while not stop.is_set() and len(codes) < limit:
                codes.append(http.get("/", headers={"Host": "web.dev.shop.localhost"}).status_code)
                stop.wait(0.05)

    sender = threading.Thread(target=run, daemon=True)
    sender.start()
    try:
        yield codes
    finally:
        stop.set()
        sender.join(timeout=15)


def reload_until_visible(page: Page, locator: Locator, timeout_s: float = DEADLINE_MS / 1000) -> None:
    """For pages that do not update themselves: reload until ``locator`` shows, within a deadline."""
    deadline = time.monotonic() + timeout_s
    while not locator.is_visible():
        assert time.monotonic() < deadline, f"{locator} did not appear within {timeout_s} s"
        page.wait_for_timeout(500)  # the polling interval between reloads
        page.reload()
