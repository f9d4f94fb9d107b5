"""One reconcile pass, in process: real supervisor and processes, the router replaced by a recorder of
the snapshots it would be sent (what is checked here is what the pass decides to push, not the proxy)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Api
from tests.integration.local.test_local_runtime import APPS, score
from yunzhou.client import build_artifact
from yunzhou.reconcile import AppController, Outcome, Timing, Worker
from yunzhou.runtimes.local import LocalSupervisor
from yunzhou.runtimes.local.readiness import ReadinessFollower
from yunzhou.runtimes.local.runtime import LocalRuntime
from yunzhou.store.models import App, WorkItem


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self.snapshots.append(snapshot)


def deploy_web(api: Api, *, replicas: int) -> None:
    """shop/dev/web, the test app's source uploaded, deployed through the API (no pass has run)."""
    api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin)
    api.http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin)
    upload = api.http.post(
        "/api/v1/artifacts", content=build_artifact(APPS / "web"),
        headers=api.admin | {"Content-Type": "application/gzip"},
    )  # fmt: skip
    settings = {"replicas": replicas}
    r = api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments",
        json={"score": score("web", "v1"), "settings": settings, "artifact": upload.json()["digest"]},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[LocalSupervisor]:
    sup = LocalSupervisor(tmp_path / "instances")
    sup.start()
    yield sup
    sup.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_converged_app_is_left_alone(api: Api, supervisor: LocalSupervisor) -> None:
    cp = api.cp
    deploy_web(api, replicas=2)
    recorder = Recorder()
    runtime = LocalRuntime(supervisor, cp.data_dir, recorder)
    controller = AppController(cp.ctx.db, {"local": runtime}, cp.data_dir, cp.ctx.clock, timing=Timing())
    key = _app_id(api)

    deadline = time.monotonic() + 30
    outcome = Outcome()
    while time.monotonic() < deadline:
        outcome = controller.reconcile(key)
        if outcome.requeue_after == Timing().steady_resync:
            break
        supervisor.wait_for(lambda st: any(s.ready for s in st), 0.2)
    assert outcome.requeue_after == Timing().steady_resync, "did not converge"
    app = api.http.get("/api/v1/projects/shop/environments/dev/apps/web", headers=api.admin).json()
    assert (app["status"], app["ready_replicas"], app["current_release"]) == ("running", 2, 1)
    assert app["rollout"]["state"] == "succeeded"
    backends = recorder.snapshots[-1]["routes"][0]["backends"]
    assert len(backends) == 2

    # a second pass with nothing changed: no process started or stopped, no route pushed, no row written
    actions, pushes, version = controller.actions, len(recorder.snapshots), app["version"]
    with cp.ctx.db.transaction() as s:
        before = s.scalar(select(App.conditions))
    assert controller.reconcile(key) == Outcome(requeue_after=Timing().steady_resync)
    assert controller.actions == actions
    assert len(recorder.snapshots) == pushes
    with cp.ctx.db.transaction() as s:
        assert s.scalar(select(App.conditions)) == before
    again = api.http.get("/api/v1/projects/shop/environments/dev/apps/web", headers=api.admin).json()
    assert again["version"] == version  # observed state never moves the version users write against


def _app_id(api: Api) -> str:
    with api.cp.ctx.db.transaction() as s:
        return str(s.scalar(select(App.id)))


class Flaky:
    kind = "app"

    def __init__(self) -> None:
        self.calls = 0

    def reconcile(self, key: str) -> Outcome:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")
        return Outcome(error="still broken") if self.calls == 2 else Outcome()


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_worker_records_failures_and_backs_off(api: Api) -> None:
    from yunzhou.store.leases import enqueue

    now = [api.cp.ctx.clock()]
    db = api.cp.ctx.db
    with db.transaction() as s:
        enqueue(s, "app", "42", now[0])
    flaky = Flaky()
    worker = Worker(db, {"app": flaky}, lambda: now[0])
    assert worker.run_once() == 1
    with db.transaction() as s:
        item = s.scalar(select(WorkItem))
        assert item is not None
        assert item.last_error == "RuntimeError: boom"
        assert item.attempts == 1
    assert worker.run_once() == 0  # backing off
    now[0] += timedelta(seconds=0.5)
    assert worker.run_once() == 1
    with db.transaction() as s:
        item = s.scalar(select(WorkItem))
        assert item is not None
        assert (item.last_error, item.attempts) == ("still broken", 2)
    assert worker.run_once() == 0
    now[0] += timedelta(seconds=1)
    assert worker.run_once() == 1
    with db.transaction() as s:
        assert s.scalar(select(WorkItem)) is None  # done


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_instance_that_becomes_ready_is_routed_at_once_without_another_pass(
    api: Api, supervisor: LocalSupervisor
) -> None:
    # the router learns of a ready instance when it becomes ready (runtimes/local/readiness.py), not at
    # the app's next pass: a request held for a woken app is served that much sooner
    cp = api.cp
    deploy_web(api, replicas=1)
    recorder = Recorder()
    runtime = LocalRuntime(supervisor, cp.data_dir, recorder)
    controller = AppController(cp.ctx.db, {"local": runtime}, cp.data_dir, cp.ctx.clock, timing=Timing())
    follower = ReadinessFollower(supervisor, runtime.publish_ready).start()
    try:
        controller.reconcile(_app_id(api))  # the one pass: starts the instance, not yet ready
        assert not any(s.ready for s in supervisor.peek()), "ready within the pass: nothing to follow"
        assert all(not route["backends"] for snap in recorder.snapshots for route in snap["routes"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _backends(recorder):
            supervisor.wait_for(lambda st: any(s.ready for s in st), 0.2)
        [backend] = _backends(recorder)
        assert [s.instance_id for s in supervisor.peek() if s.ready] == [backend["id"]]
        assert follower.pushes >= 1
    finally:
        follower.stop()


def _backends(recorder: Recorder) -> list[dict[str, Any]]:
    if not recorder.snapshots:
        return []
    return [b for route in recorder.snapshots[-1]["routes"] for b in route["backends"]]
