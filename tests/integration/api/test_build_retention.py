"""Build retention (services/build_retention.py) over a real database: per app the newest N finished
builds stay, and so does every build whose image a release still records; older ones lose their row and
their log; queued and running builds, and other apps' builds, are never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import UnixClock, score
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.build_retention import builds_to_keep, prune_builds
from yunzhou.store import Database
from yunzhou.store.models import Build, Environment, Project

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def add_build(cp: ControlPlane, tmp: Path, n: int, app: str, state: str = "succeeded") -> str:
    build_id = f"b{n:04d}{app}"
    log = tmp / f"{build_id}.log"
    log.write_text(f"log of build {n}\n")
    with cp.ctx.db.transaction() as s:
        project = s.scalar(select(Project).where(Project.name == "shop"))
        assert project is not None
        env = s.scalar(select(Environment).where(Environment.project_id == project.id))
        assert env is not None
        s.add(Build(
            id=build_id, project_id=project.id, environment_id=env.id, app=app, state=state,
            artifact=digest(9999), image_digest=digest(n) if state == "succeeded" else None,
            time_limit_seconds=60, log_path=str(log), created_by="admin",
            created_at=T0 + timedelta(minutes=n),
        ))  # fmt: skip
    return build_id


def remaining(cp: ControlPlane) -> set[str]:
    with cp.ctx.db.transaction() as s:
        return set(s.scalars(select(Build.id)))


def test_old_finished_builds_go_but_the_newest_and_those_a_release_records_stay(
    database: Database, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cp = ControlPlane.create(database, data, clock=UnixClock())
    cp.projects.create(SYSTEM, "shop")
    cp.projects.create_environment(SYSTEM, "shop", "dev", "local", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    orders = [add_build(cp, logs, n, "orders") for n in range(1, 7)]  # 1 (oldest) … 6 (newest)
    failed = add_build(cp, logs, 7, "orders", state="failed")
    running = add_build(cp, logs, 0, "orders", state="running")  # the oldest of all, still running
    other = [add_build(cp, logs, n, "billing") for n in (1, 2)]
    # release 1 of orders runs build 2's image: its build stays
    cp.apps.deploy(SYSTEM, "shop", "dev", score(image="."), None, None, image=f"shop/orders@{digest(2)}")

    deleted = prune_builds(cp.ctx.db, keep=3)

    kept_orders = {failed, orders[5], orders[4], orders[1]}  # the newest 3 finished, and build 2
    assert sorted(deleted) == sorted(set(orders) - kept_orders)
    assert remaining(cp) == kept_orders | {running, *other}
    for build_id in deleted:
        assert not (logs / f"{build_id}.log").exists()
    for build_id in remaining(cp):
        assert (logs / f"{build_id}.log").exists()
    assert prune_builds(cp.ctx.db, keep=3) == []  # a second pass finds nothing


def test_the_setting_is_checked() -> None:
    assert builds_to_keep({}) == 50
    assert builds_to_keep({"YUNZHOU_BUILD_KEEP": "5"}) == 5
    with pytest.raises(ValueError, match="YUNZHOU_BUILD_KEEP='0': must be a whole number of at least 1"):
        builds_to_keep({"YUNZHOU_BUILD_KEEP": "0"})
