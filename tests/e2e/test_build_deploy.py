"""deploy --source with the real builder: a real `yunzhou server` (with its registry) builds a small
Python app whose requirements come from PyPI into an image, pushes it, and releases it pinned to the
digest; a build that fails (a syntax error) exits 1 with the tool's error and leaves that release alone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from yunzhou.testing import ControlPlaneProcess

pytestmark = pytest.mark.e2e
APP = """\
import http.server, os, six

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(six.ensure_binary("hello from a built image\\n"))

http.server.HTTPServer(("", int(os.environ["PORT"])), Hello).serve_forever()
"""
SCORE = """\
apiVersion: score.dev/v1b1
metadata: {name: hello}
containers:
  web: {image: ., command: [python3, app.py]}
service: {ports: {web: {port: 8080}}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


def cli(server: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yunzhou", *args],
        env=server.client_env() | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def test_deploy_source_builds_pushes_and_releases_the_image_pinned_to_its_digest(
    server: ControlPlaneProcess, tmp_path: Path
) -> None:
    ok(cli(server, "project", "create", "shop"))
    ok(cli(server, "env", "create", "shop/dev"))
    source = tmp_path / "hello"
    source.mkdir()
    (source / "app.py").write_text(APP)
    (source / "requirements.txt").write_text("six==1.16.0\n")
    (source / "score.yaml").write_text(SCORE)

    done = cli(server, "deploy", "shop/dev", "-f", str(source / "score.yaml"), "--source", str(source))
    assert ok(done) == "Deployed shop/dev/hello as release 1\n"
    assert "Successfully installed six-1.16.0" in done.stderr  # the build's log, followed live
    [build] = json.loads(ok(cli(server, "builds", "shop/dev/hello", "-o", "json")))
    assert (build["state"], build["stack"], build["release"], build["pushed"]) == (
        "succeeded",
        "python",
        1,
        True,
    )
    assert build["image"] == f"shop/hello@{build['image_digest']}"
    assert build["image_digest"].startswith("sha256:")
    [release] = json.loads(ok(cli(server, "releases", "shop/dev/hello", "-o", "json")))
    assert release["image"] == build["image"]
    assert release["artifact"].startswith("sha256:")
    log = ok(cli(server, "build", "logs", build["id"]))
    assert log.rstrip().endswith(f"==> Build succeeded: {build['image']}; release 1")

    # a syntax error fails the build with Python's own message; release 1 stays the only one
    (source / "app.py").write_text(APP + "def broken(:\n")
    failed = cli(server, "deploy", "shop/dev", "-f", str(source / "score.yaml"), "--source", str(source))
    assert failed.returncode == 1, failed.stderr
    assert "SyntaxError" in failed.stderr
    assert "the running release is unchanged" in failed.stderr
    releases = json.loads(ok(cli(server, "releases", "shop/dev/hello", "-o", "json")))
    assert [r["number"] for r in releases] == [1]
    latest = json.loads(ok(cli(server, "builds", "shop/dev/hello", "-o", "json")))[0]
    assert latest["state"] == "failed"
    assert "SyntaxError" in latest["error"]
    assert latest["release"] is None
