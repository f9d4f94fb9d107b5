"""Deploys a new user gets wrong in the first hour, through the real CLI and a real server on the local
target (issue 14, first hour 4 and 6): `${PORT}` in a command is refused with a suggestion that, deployed
as given, serves; a deploy that cannot start says so at once instead of exiting 0 and failing later."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from yunzhou.testing import ControlPlaneProcess

pytestmark = pytest.mark.e2e

APP = """
import argparse, http.server
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
port = parser.parse_args().port
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"listening on {port}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", port), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("first-hour") / "data") as cp:
        assert cli(cp, "project", "create", "shop").returncode == 0
        assert cli(cp, "env", "create", "shop/dev").returncode == 0
        yield cp


def cli(server: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yunzhou", *args],
        env=server.client_env() | {"COLUMNS": "400"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def score(name: str, command: list[str] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"image": "python:3.11-slim"}
    if command is not None:
        container["command"] = command
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}}
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": container},
        "service": {"ports": {"web": {"port": 80, "targetPort": 8080}}},
    }


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_the_port_placeholder_error_suggests_a_command_that_serves(
    server: ControlPlaneProcess, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "app.py").write_text(APP)
    doc = score("portapp", ["python3", "app.py", "--port", "${PORT}"])
    refused = cli(server, "deploy", "shop/dev", "-f", write(tmp_path, doc), "--source", str(source))
    assert refused.returncode != 0
    message = " ".join(refused.stderr.split())
    assert "containers.web.command.3" in message
    assert "Traceback" not in refused.stderr
    suggested = re.search(r'\["sh", "-c", "[^"]*"\]', message)
    assert suggested is not None, message

    doc["containers"]["web"]["command"] = json.loads(suggested.group(0))
    deployed = cli(
        server, "deploy", "shop/dev", "-f", write(tmp_path, doc), "--source", str(source), "--wait"
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "Warning" not in deployed.stderr
    r = httpx.get(
        f"http://127.0.0.1:{server.router_port}/", headers={"Host": "portapp.dev.shop.localhost"}, timeout=10
    )
    assert r.status_code == 200
    assert r.text.startswith("listening on ")
    # the port it was given ($PORT, expanded by the shell), which the instance list shows
    instances = httpx.get(
        f"{server.url}/api/v1/projects/shop/environments/dev/apps/portapp/instances",
        headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=10,
    ).json()["items"]  # fmt: skip
    assert r.text in {f"listening on {i['port']}" for i in instances}, (r.text, instances)


def test_a_release_without_an_image_is_refused_by_a_default_server_and_nothing_is_written(
    server: ControlPlaneProcess, tmp_path: Path
) -> None:
    # instances are containers of their release's image: a Score naming an outside image and a command
    # (which a host-process server would run) cannot run here, and the refusal says the three ways out
    doc = score("outside", ["sh", "-c", "exec python3 -m http.server $PORT"])
    refused = cli(server, "deploy", "shop/dev", "-f", write(tmp_path, doc), "--wait")
    assert refused.returncode != 0
    said = " ".join(refused.stderr.split())
    assert "containers.web.image: this server runs every instance as a container" in said, said
    assert "'python:3.11-slim' is not an image of project 'shop'" in said
    for fix in ("--source DIR", "shop/APP:TAG", "YUNZHOU_INSTANCE_MODE=process"):
        assert fix in said, said
    assert "Traceback" not in refused.stderr
    gone = httpx.get(
        f"{server.url}/api/v1/projects/shop/environments/dev/apps/outside",
        headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=10,
    )  # fmt: skip
    assert gone.status_code == 404, gone.text


def test_a_deploy_that_cannot_start_says_so_at_once(tmp_path: Path) -> None:
    # a development server (YUNZHOU_INSTANCE_MODE=process) runs a Score command as a host process: what
    # keeps one from starting is said at deploy
    with ControlPlaneProcess(tmp_path / "data", host_processes=True) as server:
        assert cli(server, "project", "create", "shop").returncode == 0
        assert cli(server, "env", "create", "shop/dev").returncode == 0
        _cannot_start_is_said(server, tmp_path)


def _cannot_start_is_said(server: ControlPlaneProcess, tmp_path: Path) -> None:
    no_command = cli(server, "deploy", "shop/dev", "-f", write(tmp_path, score("imageonly", None)))
    assert no_command.returncode == 0, no_command.stderr
    said = " ".join(no_command.stderr.split())
    assert (
        "Warning: this release will not start: containers.web.command: the local target runs processes"
        in said
    )

    no_source = cli(
        server, "deploy", "shop/dev", "-f", write(tmp_path, score("nosource", ["python3", "app.py"]))
    )
    assert no_source.returncode == 0, no_source.stderr
    said = " ".join(no_source.stderr.split())
    assert "containers.web.command: runs app.py from the app's source, but no source was uploaded" in said
    assert "deploy with --source DIR" in said

    on_path = score("onpath", ["sh", "-c", "exec python3 -m http.server $PORT"])
    fine = cli(server, "deploy", "shop/dev", "-f", write(tmp_path, on_path), "--wait")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "Warning" not in fine.stderr
    # no image: it runs as a host process, which is said as a note (it does start)
    assert "this release has no image" in " ".join(fine.stderr.split())
