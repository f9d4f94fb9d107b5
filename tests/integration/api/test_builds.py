"""Build jobs end to end around an injected build function: the API, the build worker and the deploy
use-case. A failed, cancelled or timed-out build creates no release and leaves the running one
untouched; logs are followed live over a real HTTP server; another project's members see nothing."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.helpers import score, served, upload_source
from yunzhou.api import create_app
from yunzhou.api.routes import builds as build_routes
from yunzhou.client import YunzhouClient
from yunzhou.domain.errors import PermanentError
from yunzhou.reconcile import builds as build_worker
from yunzhou.reconcile.builds import SERVER_STOPPED, BuildJob, BuildWorker, BuiltImage
from yunzhou.services import BuildPolicy, ControlPlane
from yunzhou.store.models import Build
from yunzhou.testing.polling import wait_until

V1 = "/api/v1"
ENV = f"{V1}/projects/shop/environments/dev"
PIP_ERROR = "ERROR: No matching distribution found for nosuchpkg"


class FakeBuilder:
    """Logs like a builder; ``mode``: succeed, fail (pip's error), wait (until cancelled), gate, spam."""

    def __init__(self) -> None:
        self.mode = "succeed"
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, job: BuildJob) -> BuiltImage:
        job.log(f"Collecting flask (stack {job.stack})")
        job.progress("installing dependencies", 0.4)
        self.started.set()
        if self.mode == "wait":
            job.cancel.wait(60)
            raise PermanentError("the build container was stopped")
        if self.mode == "gate":
            self.gate.wait(60)
        if self.mode == "spam":
            for n in range(2000):
                job.log(f"line {n} of a build that prints without end")
        if self.mode == "fail":
            job.log(PIP_ERROR)
            raise PermanentError(f"pip install failed (exit 1): {PIP_ERROR}")
        job.log("Successfully installed flask-3.0.0")
        digest = "sha256:" + hashlib.sha256(job.source.read_bytes() + job.app.encode()).hexdigest()
        return BuiltImage(digest, job.stack or "python", "3.11", "sha256:" + "5" * 64, False, 4096)


@pytest.fixture
def builder() -> FakeBuilder:
    return FakeBuilder()


@pytest.fixture
def worker(control_plane: ControlPlane, builder: FakeBuilder) -> Iterator[BuildWorker]:
    w = BuildWorker(control_plane, builder, concurrency=2, poll=0.05, heartbeat=0.1, lease_ttl=10)
    w.start()
    yield w
    builder.gate.set()
    w.stop()


@pytest.fixture
def shop(api: Api, tmp_path: Path) -> dict[str, Any]:
    """Project shop/dev, a developer's token, a viewer's token and an uploaded Python source."""
    assert api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    assert api.http.post(
        f"{V1}/projects/shop/environments", json={"name": "dev"}, headers=api.admin
    ).is_success
    artifact = upload_source(api.cp, tmp_path / "src", {"requirements.txt": "flask\n", "app.py": "x = 1\n"})
    return {
        "dev": api.member("shop", "dev", "developer"),
        "viewer": api.member("shop", "vera", "viewer"),
        "artifact": artifact,
    }


def start(api: Api, shop: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = api.http.post(
        f"{ENV}/builds", json={"artifact": shop["artifact"], "score": score(), **body}, headers=shop["dev"]
    )
    assert r.status_code == 202, r.text
    doc: dict[str, Any] = r.json()
    return doc


def finished(api: Api, build_id: str, headers: dict[str, str]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.http.get(f"{V1}/builds/{build_id}", headers=headers).json()
        return doc if doc["state"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(f"build {build_id} to finish", done, timeout=60)
    return result


def releases(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.http.get(f"{ENV}/apps/orders/releases", headers=headers).json()["items"]
    return items


def log_text(api: Api, build_id: str, headers: dict[str, str]) -> str:
    text: str = api.http.get(f"{V1}/builds/{build_id}/logs", headers=headers).json()["text"]
    return text


@pytest.mark.usefixtures("worker")
def test_a_build_releases_its_image_pinned_to_the_digest_as_its_creator(
    api: Api, shop: dict[str, Any]
) -> None:
    b = finished(api, start(api, shop, settings={"replicas": 2})["id"], shop["viewer"])
    assert b["state"] == "succeeded", b
    assert b["release"] == 1
    assert b["image"] == f"shop/orders@{b['image_digest']}"
    assert (b["stack"], b["stack_version"], b["deps_cached"], b["pushed"]) == ("python", "3.11", False, False)
    assert b["progress"] == {"step": "done", "fraction": 1.0}
    [release] = releases(api, shop["viewer"])
    assert release["image"] == b["image"]
    assert release["artifact"] == shop["artifact"]
    assert release["created_by"] == "dev"
    app = api.http.get(f"{ENV}/apps/orders", headers=shop["dev"]).json()
    assert app["replicas"] == 2
    log = log_text(api, b["id"], shop["viewer"])
    assert "Successfully installed flask-3.0.0" in log
    assert log.rstrip().endswith(f"==> Build succeeded: {b['image']}; release 1")
    path = api.cp.data_dir / "builds" / f"{b['id']}.log"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("worker")
def test_a_failed_build_creates_no_release_and_leaves_the_running_one_untouched(
    api: Api, shop: dict[str, Any], builder: FakeBuilder
) -> None:
    body = {"score": score(), "settings": {"replicas": 1}}
    assert api.http.post(f"{ENV}/deployments", json=body, headers=shop["dev"]).status_code == 201
    builder.mode = "fail"
    b = finished(api, start(api, shop)["id"], shop["dev"])
    assert b["state"] == "failed"
    assert PIP_ERROR in b["error"]
    assert b["release"] is None
    assert b["image"] is None
    assert [r["number"] for r in releases(api, shop["dev"])] == [1]
    assert api.http.get(f"{ENV}/apps/orders", headers=shop["dev"]).json()["desired_release"] == 1
    last = log_text(api, b["id"], shop["dev"]).rstrip().splitlines()[-1]
    assert last == f"==> Build failed: pip install failed (exit 1): {PIP_ERROR}"  # the tool's error, last


@pytest.mark.usefixtures("worker")
def test_cancel_stops_a_running_build_without_a_release(
    api: Api, shop: dict[str, Any], builder: FakeBuilder
) -> None:
    builder.mode = "wait"
    b = start(api, shop)
    assert builder.started.wait(30)
    r = api.http.post(f"{V1}/builds/{b['id']}/cancel", headers=shop["viewer"])
    assert r.status_code == 403, r.text  # viewers may watch, not cancel
    r = api.http.post(f"{V1}/builds/{b['id']}/cancel", headers=shop["dev"])
    assert r.status_code == 200, r.text
    assert r.json()["cancel_requested"] is True
    done = finished(api, b["id"], shop["dev"])
    assert (done["state"], done["error"], done["release"]) == ("cancelled", "cancelled on request", None)
    assert api.http.get(f"{ENV}/apps/orders", headers=shop["dev"]).status_code == 404  # nothing released


@pytest.mark.usefixtures("worker")
def test_the_time_limit_stops_a_build(api: Api, shop: dict[str, Any], builder: FakeBuilder) -> None:
    builder.mode = "wait"
    b = finished(api, start(api, shop, time_limit_seconds=1)["id"], shop["dev"])
    assert b["state"] == "failed"
    assert b["error"] == "the time limit of 1 s passed"
    assert b["release"] is None
    assert "==> Build failed: the time limit of 1 s passed" in log_text(api, b["id"], shop["dev"])


@pytest.mark.usefixtures("worker")
def test_the_log_is_followed_live_until_the_build_finishes(
    api: Api, shop: dict[str, Any], builder: FakeBuilder
) -> None:
    builder.mode = "gate"
    b = start(api, shop)
    with served(create_app(api.cp)) as url, httpx.Client(base_url=url, timeout=60) as http:
        url_path = f"{V1}/builds/{b['id']}/logs"
        with http.stream("GET", url_path, params={"follow": "true"}, headers=shop["viewer"]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            lines = response.iter_lines()
            first = json.loads(next(lines))
            assert first["offset"] == 0
            assert "Collecting flask" in first["text"]  # read while the build still runs
            assert api.http.get(f"{V1}/builds/{b['id']}", headers=shop["dev"]).json()["state"] == "running"
            builder.gate.set()
            rest = [json.loads(line) for line in lines if line]
    text = first["text"] + "".join(doc.get("text", "") for doc in rest)
    assert "Successfully installed" in text
    assert rest[-1] == {
        "done": True, "state": "succeeded", "error": "", "release": 1, "next_offset": len(text.encode()),
    }  # fmt: skip
    # a reconnect from where it stopped gets only the end
    page = api.http.get(url_path, params={"offset": rest[-1]["next_offset"]}, headers=shop["dev"]).json()
    assert (page["text"], page["done"]) == ("", True)


@pytest.mark.usefixtures("worker")
def test_a_followed_response_ends_in_time_and_the_client_goes_on_from_its_offset(
    api: Api, shop: dict[str, Any], builder: FakeBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping server drains open responses before it stops builds: no response may follow forever."""
    monkeypatch.setattr(build_routes, "FOLLOW_MAX_S", 0.5)
    builder.mode = "gate"
    b = start(api, shop)
    assert builder.started.wait(30)
    with served(create_app(api.cp)) as url:
        path = f"{url}{V1}/builds/{b['id']}/logs"
        lines = httpx.get(path, params={"follow": "true"}, headers=shop["dev"], timeout=30).text.splitlines()
        assert all("done" not in json.loads(line) for line in lines)  # ended early, the build still runs
        with YunzhouClient(url, shop["dev"]["Authorization"].removeprefix("Bearer ")) as client:
            threading.Timer(1.5, builder.gate.set).start()
            chunks = list(client.follow_build_log(b["id"]))
    text = "".join(str(c.get("text") or "") for c in chunks)
    assert text.count("Collecting flask") == 1  # resumed from its offset: nothing twice
    assert "Successfully installed" in text
    assert chunks[-1]["state"] == "succeeded"


@pytest.mark.usefixtures("worker")
def test_another_projects_viewer_gets_404_for_everything_about_a_build(
    api: Api, shop: dict[str, Any]
) -> None:
    b = finished(api, start(api, shop)["id"], shop["dev"])
    assert api.http.post(f"{V1}/projects", json={"name": "bank"}, headers=api.admin).status_code == 201
    stranger = api.member("bank", "eve", "owner")
    for method, path in (
        ("GET", f"{V1}/builds/{b['id']}"),
        ("GET", f"{V1}/builds/{b['id']}/logs"),
        ("GET", f"{V1}/builds/{b['id']}/logs?follow=true"),
        ("POST", f"{V1}/builds/{b['id']}/cancel"),
    ):
        r = api.http.request(method, path, headers=stranger)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["message"] == f"build {b['id']!r} not found"
    r = api.http.get(f"{ENV}/builds", headers=stranger)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "project 'shop' not found"
    mine = api.http.get(f"{ENV}/builds", params={"app": "orders"}, headers=shop["viewer"]).json()["items"]
    assert [x["id"] for x in mine] == [b["id"]]


def test_a_build_whose_server_stopped_is_marked_failed_by_the_next_pass(
    api: Api, shop: dict[str, Any], builder: FakeBuilder
) -> None:
    b = start(api, shop)
    now = api.cp.ctx.clock()
    with api.cp.ctx.db.transaction() as s:  # as a server that died mid-build left it
        row = s.get(Build, b["id"])
        assert row is not None
        row.state, row.lease_token, row.started_at = "running", "gone", now - timedelta(minutes=5)
        row.lease_expires_at = now - timedelta(seconds=1)
    BuildWorker(api.cp, builder).run_once()
    done = api.http.get(f"{V1}/builds/{b['id']}", headers=shop["dev"]).json()
    assert (done["state"], done["error"], done["release"]) == ("failed", SERVER_STOPPED, None)
    assert not builder.started.is_set()  # not run again
    assert log_text(api, b["id"], shop["dev"]).endswith(f"==> Build failed: {SERVER_STOPPED}\n")


def test_the_per_project_bound_holds_for_concurrent_starts(api: Api, shop: dict[str, Any]) -> None:
    """Six starts at once: the count and the insert are one transaction under the project's row lock
    (PostgreSQL) or the write lock (SQLite), so exactly the bound's worth are queued."""
    api.cp.build_policy = BuildPolicy(max_active_per_project=2)
    outcomes: list[int] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        barrier.wait()
        outcomes.append(
            api.http.post(
                f"{ENV}/builds", json={"artifact": shop["artifact"], "app": "orders"}, headers=shop["dev"]
            ).status_code
        )

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == [202, 202, 409, 409, 409, 409]


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("taken_away", ["token revoked", "membership removed"])
def test_a_creator_who_lost_the_right_to_deploy_during_the_build_gets_no_release(
    api: Api, shop: dict[str, Any], builder: FakeBuilder, taken_away: str
) -> None:
    """The release is made as the creator's token stands when the build ends, not when it started."""
    builder.mode = "gate"
    b = start(api, shop)
    assert builder.started.wait(30)
    if taken_away == "token revoked":
        token_id = api.http.get(f"{V1}/whoami", headers=shop["dev"]).json()["token_id"]
        assert api.http.delete(f"{V1}/tokens/{token_id}", headers=api.admin).status_code == 204
        expected = f"the release was refused: token {token_id} was revoked"
    else:
        assert api.http.delete(f"{V1}/projects/shop/members/dev", headers=api.admin).status_code == 204
        expected = "the release was refused: dev may no longer deploy in project 'shop'"
    builder.gate.set()
    done = finished(api, b["id"], shop["viewer"])
    assert done["state"] == "failed"
    assert done["error"].startswith(expected), done["error"]
    assert done["release"] is None
    assert done["image"] is not None  # built, and kept: only the release was refused
    assert api.http.get(f"{ENV}/apps/orders", headers=api.admin).status_code == 404


@pytest.mark.usefixtures("worker")
def test_a_build_that_prints_without_end_cannot_fill_the_disk(
    api: Api, shop: dict[str, Any], builder: FakeBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_worker, "LOG_MAX_BYTES", 4096)
    builder.mode = "spam"
    b = finished(api, start(api, shop)["id"], shop["dev"])
    assert b["state"] == "succeeded"
    log = log_text(api, b["id"], shop["dev"])
    assert len(log.encode()) < 4096 + 400  # the bound, plus the worker's own closing lines
    assert "==> the log reached 4096 bytes; the build's further output is dropped" in log
    assert "line 1999" not in log
    assert log.rstrip().endswith(f"==> Build succeeded: {b['image']}; release 1")  # the outcome is kept


def test_a_push_longer_than_the_lease_keeps_the_lease(
    api: Api, shop: dict[str, Any], builder: FakeBuilder
) -> None:
    """The lease is extended while the image is pushed (a large image, a registry read-only for GC), so
    the build is not taken for one whose server stopped."""
    pushed = threading.Event()

    def slow_push(project: str, app: str, built: BuiltImage, log: Any) -> None:
        log(f"pushing {project}/{app}@{built.digest} slowly")
        pushed.wait(3.0)  # three lease lengths

    worker = BuildWorker(api.cp, builder, push=slow_push, poll=0.05, heartbeat=0.1, lease_ttl=1.0).start()
    try:
        b = finished(api, start(api, shop)["id"], shop["dev"])
    finally:
        worker.stop()
    assert (b["state"], b["pushed"], b["release"]) == ("succeeded", True, 1), b
