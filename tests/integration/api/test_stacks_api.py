"""Stacks through the API and the CLI: list, a build request run by the stack-build worker (a real
mmdebstrap build, or the shared stack cache's copy), export from one server and import into another.
SQLite only: nothing here depends on the database beyond the work item and the audit rows."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import Api
from tests.unit.cli.conftest import CLEAN_ENV
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig
from yunzhou.domain.limits import Limits, MiB
from yunzhou.reconcile.stacks import StackBuildController
from yunzhou.reconcile.worker import Worker
from yunzhou.services import ControlPlane
from yunzhou.services.stacks import STACK_BUILD_KIND
from yunzhou.store import Database, sqlite_url, upgrade

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # a cold stack build on a busy machine


def _server(root: Path) -> Iterator[Api]:
    (root / "data").mkdir(parents=True)
    db = Database(sqlite_url(root))
    upgrade(db.engine)
    api = Api(ControlPlane.create(db, root / "data"))
    with api.http:
        yield api
    db.dispose()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Api]:
    yield from _server(tmp_path / "one")


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[Api]:
    yield from _server(tmp_path / "two")


def _in_process(api: Api) -> httpx.MockTransport:
    """The client's requests (streamed bodies too) handed to the in-process API."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.read()
        r = api.http.request(
            request.method, request.url.raw_path.decode(), headers=dict(request.headers), content=body
        )
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    return httpx.MockTransport(handle)


def _stack_worker(api: Api) -> Worker:
    ctx = api.cp.ctx
    controller = StackBuildController(api.cp.data_dir, ctx.clock)
    return Worker(ctx.db, {STACK_BUILD_KIND: controller}, ctx.clock, lease_ttl=3600)


def _stack(api: Api, name: str) -> dict[str, Any]:
    r = api.http.get("/api/v1/stacks", headers=api.admin)
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["items"] if s["name"] == name)


def _cli(api: Api, tmp_path: Path) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        state = CliState(transport=_in_process(api), sleep=lambda _: _stack_worker(api).run_once())
        state.config = ClientConfig(
            url="http://yunzhou.test", token=api.admin_token, auth_source="YUNZHOU_TOKEN", data_dir=tmp_path
        )
        return CliRunner().invoke(app, list(args), obj=state, env=CLEAN_ENV)

    return invoke


def test_list_shows_every_stack_and_what_is_not_built(server: Api) -> None:
    r = server.http.get("/api/v1/stacks", headers=server.token_for("someone", ("read",)))
    assert r.status_code == 200, r.text
    items = {s["name"]: s for s in r.json()["items"]}
    assert list(items) == ["python", "node", "java", "tomcat", "static"]
    assert items["node"]["build_packages"] == ["npm"]
    assert items["python"]["image"] == "stacks/python:3.11"
    assert items["java"]["digest"] is None
    assert items["java"]["state"] == "not built"


def test_an_unknown_stack_is_refused_naming_the_supported_ones(server: Api) -> None:
    r = server.http.post("/api/v1/stacks/ruby/build", headers=server.admin)
    assert r.status_code == 422
    problem = r.json()["error"]["problems"][0]
    assert problem["path"] == "path.name"
    assert "python|node|java|tomcat|static" in problem["message"]
    r = server.http.post("/api/v1/stacks/python/build", headers=server.token_for("dev", ("read", "write")))
    assert r.status_code == 403


def test_build_is_queued_then_run_by_the_stack_worker(server: Api) -> None:
    r = server.http.post("/api/v1/stacks/static/build", headers=server.admin)
    assert r.status_code == 202, r.text
    assert r.json()["build"]["state"] == "queued"
    assert r.json()["build"]["requested_by"] == "admin"
    assert _stack_worker(server).run_once() == 1  # a real build, or the shared cache's copy
    stack = _stack(server, "static")
    assert stack["build"]["state"] == "built", stack
    assert stack["state"] == "built"
    assert stack["digest"] == stack["build"]["digest"]
    assert stack["size"] > 10_000_000
    audit = server.http.get("/api/v1/audit?action=stack.build", headers=server.admin).json()["items"]
    assert [(e["action"], e["target"]) for e in audit] == [("stack.build", "static")]
    assert _stack_worker(server).run_once() == 0  # done: the work item is gone


def test_cli_builds_with_wait_lists_exports_and_imports(
    server: Api, other_server: Api, tmp_path: Path
) -> None:
    run = _cli(server, tmp_path)
    built = run("stacks", "build", "static", "--wait")
    assert built.exit_code == 0, built.output
    assert "Built stacks/static:1.22 sha256:" in built.output
    listed = run("stacks", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    static = next(s for s in json.loads(listed.stdout) if s["name"] == "static")
    assert static["state"] == "built"
    table = run("stacks", "list")
    assert "not built" in table.stdout  # java was never built on this server

    archive = tmp_path / "static.tar"
    exported = run("stacks", "export", "static", "-f", str(archive))
    assert exported.exit_code == 0, exported.output
    with tarfile.open(archive) as tar:
        index = json.load(io.BytesIO(tar.extractfile("index.json").read()))  # type: ignore[union-attr]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "stacks/static:1.22"
    ]
    not_built = run("stacks", "export", "java", "-f", str(tmp_path / "java.tar"))
    assert not_built.exit_code == 1
    assert "stack java is not built here" in not_built.output

    imported = _cli(other_server, tmp_path)("stacks", "import", str(archive))
    assert imported.exit_code == 0, imported.output
    assert f"Imported stacks/static:1.22 {static['digest']}" in imported.output
    there = _stack(other_server, "static")
    assert there["digest"] == static["digest"]
    assert there["state"] == "built"
    audit = other_server.http.get("/api/v1/audit?action=stack.import", headers=other_server.admin).json()
    assert audit["items"][0]["target"] == "stacks/static:1.22"


def test_import_refuses_what_is_not_a_stack_archive(server: Api) -> None:
    r = server.http.post(
        "/api/v1/stacks/import",
        content=b"not a tar at all",
        headers={**server.admin, "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 422, r.text
    r = server.http.post(
        "/api/v1/stacks/import", content=b"x", headers={**server.admin, "Content-Type": "text/plain"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["path"] == "content-type"


def test_a_failed_build_records_mmdebstrap_last_lines(
    server: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "broken.sources"
    sources.write_text("Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\nComponents: main\n")
    monkeypatch.setenv("YUNZHOU_APT_SOURCES", str(sources))
    monkeypatch.setenv("YUNZHOU_STACK_CACHE", str(tmp_path / "cache"))
    assert server.http.post("/api/v1/stacks/static/build", headers=server.admin).status_code == 202
    assert _stack_worker(server).run_once() == 1
    stack = _stack(server, "static")
    assert stack["build"]["state"] == "failed"
    assert "mmdebstrap failed" in stack["build"]["message"]
    assert "127.0.0.1" in stack["build"]["message"]  # apt's own words about the unreachable mirror
    assert stack["digest"] is None
    assert datetime.fromisoformat(stack["build"]["updated_at"]) <= datetime.now(UTC)


def test_import_body_has_its_own_limit(server: Api) -> None:
    server.cp.ctx.limits = Limits(stack_archive_body=2 * MiB)
    tar = {**server.admin, "Content-Type": "application/x-tar"}
    r = server.http.post("/api/v1/stacks/import", content=b"\0" * (3 * MiB), headers=tar)
    assert r.status_code == 413
    assert "YUNZHOU_MAX_STACK_ARCHIVE" in r.json()["error"]["message"]
    # over the JSON limit (1 MiB) but under the stack archive's: read, then refused as no archive
    r = server.http.post("/api/v1/stacks/import", content=b"\0" * (3 * MiB // 2), headers=tar)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("the uploaded archive is not an OCI layout archive")
    assert r.json()["error"]["problems"][0]["path"] == "body"
