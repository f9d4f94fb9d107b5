"""The examples of `examples/try/` as a new user tries them (issue 15): each deployed with the real CLI,
`yunzhou deploy shop/dev -f DIR/score.yaml --source DIR --wait`, against a real `yunzhou server` that builds
it into an image (its stack built from Debian packages the first time, then cached) and runs it as a
container, then asked through the router: the answer is the app's own.

The jar and the war are built here with the JDK's javac/jar by the examples' own build.sh (no binaries in
the repository). Each build's duration is printed (`-s` shows them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_build_deploy import ok
from yunzhou.testing import ControlPlaneProcess

pytestmark = pytest.mark.e2e
TRY = Path(__file__).resolve().parents[2] / "examples" / "try"
BUILD_TIMEOUT = 2400  # a cold node stack (run + build image) took 11 min on the busy 2-core machine

# kind → (the answer's expected fields, its stack)
KINDS = {
    "python": ({"app": "hello-python", "message": "hello from Flask", "flask": "3.0.3"}, "python"),
    "node": ({"app": "hello-node", "message": "hello from Express", "express": "4.19.2"}, "node"),
    "java": ({"app": "hello-java", "message": "hello from a jar"}, "java"),
    "tomcat": ({"app": "hello-tomcat", "message": "hello from a war"}, "tomcat"),
    "static": (None, "static"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path_factory.mktemp("try") / "data") as cp:
        for args in (("project", "create", "shop"), ("env", "create", "shop/dev")):
            ok(cli(cp, *args))
        yield cp


def cli(server: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yunzhou", *args],
        env=server.client_env() | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip


def source_of(kind: str, tmp_path: Path) -> Path:
    """The example as a user has it: a copy, with its build.sh run where it has one (jar, war)."""
    source = shutil.copytree(TRY / kind, tmp_path / kind)
    if (source / "build.sh").exists():
        subprocess.run(["sh", str(source / "build.sh")], check=True, capture_output=True, timeout=300)
    return source


def through_router(server: ControlPlaneProcess, app: str) -> httpx.Response:
    host = f"{app}.dev.shop.localhost"
    deadline = time.monotonic() + 60
    while True:  # a JSP is compiled on its first request; the route is there once the rollout is done
        response = httpx.get(f"http://127.0.0.1:{server.router_port}/", headers={"Host": host}, timeout=60)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)  # polling, bounded by the deadline


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_new_users_app_deploys_from_source_and_answers_through_the_router(
    server: ControlPlaneProcess, tmp_path: Path, kind: str
) -> None:
    expected, stack = KINDS[kind]
    source = source_of(kind, tmp_path)
    app = f"hello-{kind}"
    began = time.monotonic()
    done = ok(cli(server, "deploy", "shop/dev", "-f", str(source / "score.yaml"), "--source", str(source),
                  "--wait"))  # fmt: skip
    took = time.monotonic() - began
    assert f"Deployed shop/dev/{app} as release 1" in done
    [build] = json.loads(ok(cli(server, "builds", f"shop/dev/{app}", "-o", "json")))
    assert (build["state"], build["stack"], build["release"]) == ("succeeded", stack, 1)
    [release] = json.loads(ok(cli(server, "releases", f"shop/dev/{app}", "-o", "json")))
    assert release["image"] == build["image"]  # the release runs the built image, pinned to its digest

    response = through_router(server, app)
    assert response.status_code == 200, response.text
    if expected is None:
        assert "<h1>hello from a static site</h1>" in response.text
        css = httpx.get(
            f"http://127.0.0.1:{server.router_port}/style.css", headers={"Host": f"{app}.dev.shop.localhost"}
        )
        assert css.status_code == 200
        assert "font-family" in css.text
    else:
        body = response.json()
        assert {k: body.get(k) for k in expected} == expected, body
        if kind == "tomcat":
            assert body["server"].startswith("Apache Tomcat/10.1"), body
        if kind == "java":
            assert body["java"].startswith("17."), body
    built = datetime.fromisoformat(build["finished_at"]) - datetime.fromisoformat(build["started_at"])
    print(f"{kind}: build {built.total_seconds():.0f} s, deploy --source --wait {took:.0f} s")  # with -s
