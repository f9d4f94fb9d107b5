"""A static site on the local target, for real (#14 first hour 10): it does not serve the deploy's own
Score and settings files, and a redeploy with new content is served to a browser holding the old page's
Last-Modified (files used to be dated 1970, so every release answered 304 to it)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.local.test_local_runtime import settle
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until

HOST = "site.dev.shop.localhost"
SCORE = {
    "apiVersion": "score.dev/v1b1",
    "metadata": {"name": "site"},
    "containers": {
        "web": {
            "image": "python:3.11-slim",
            "command": ["sh", "-c", 'exec python3 -m http.server --bind 127.0.0.1 "$PORT"'],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
        }
    },
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", startup_timeout=120, host_processes=True) as cp:
        yield cp


def _site(folder: Path, page: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "score.yaml").write_text(yaml.safe_dump(SCORE))
    (folder / "yunzhou.yaml").write_text("replicas: 1\n")
    (folder / "index.html").write_text(page)
    return folder


def _deploy(client: YunzhouClient, site: Path) -> dict[str, Any]:
    result = client.deploy("shop", "dev", SCORE, None, client.upload_artifact(site))
    return settle(client, result)


def test_a_static_site_hides_its_score_and_is_fresh_after_a_redeploy(
    server: ControlPlaneProcess, tmp_path: Path
) -> None:
    router = httpx.Client(
        base_url=f"http://127.0.0.1:{server.router_port}", headers={"Host": HOST}, timeout=10
    )
    with YunzhouClient(server.url, server.admin_token) as client, router:
        client.create_project("shop")
        client.create_environment("shop", "dev")
        site = _site(tmp_path / "site", "<p>release 1</p>\n")
        assert _deploy(client, site)["state"] == "succeeded"

        first = router.get("/index.html")
        assert (first.status_code, first.text) == (200, "<p>release 1</p>\n")
        validator = first.headers["Last-Modified"]
        assert email.utils.parsedate_to_datetime(validator).year > 1970
        assert router.get("/score.yaml").status_code == 404
        assert router.get("/yunzhou.yaml").status_code == 404

        # HTTP dates count whole seconds: content uploaded in the same second as release 1 would carry
        # the same Last-Modified, as it would from any server that dates files by their time.
        first_second = email.utils.parsedate_to_datetime(validator).timestamp()
        wait_until("the clock to pass release 1's second", lambda: time.time() >= first_second + 1, timeout=5)
        _site(site, "<p>release 2</p>\n")  # same size, same name: only the time tells them apart
        assert _deploy(client, site)["state"] == "succeeded"
        again = router.get("/index.html", headers={"If-Modified-Since": validator})
        assert (again.status_code, again.text) == (200, "<p>release 2</p>\n")
