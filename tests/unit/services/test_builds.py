"""The build-job use-cases: validation before queueing, the per-project bound, who may do what, cancel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers import UnixClock, score, upload_source
from yunzhou.domain.access import Role, Scope
from yunzhou.domain.errors import Conflict, Forbidden, NotFound, UserError
from yunzhou.services import SYSTEM, BuildPolicy, Caller, ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.store.models import AuditEvent, Build

PYTHON_APP = {"requirements.txt": "flask==3.0.0\n", "app.py": "print('hi')\n"}


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(db, tmp_path / "data", clock=UnixClock())
    cp.build_policy = BuildPolicy(max_active_per_project=2, time_limit_seconds=600)
    for project in ("shop", "bank"):
        cp.projects.create(SYSTEM, project)
        cp.projects.create_environment(SYSTEM, project, "dev", "local", None)
    return cp


@pytest.fixture
def artifact(cp: ControlPlane, tmp_path: Path) -> str:
    return upload_source(cp, tmp_path / "src", PYTHON_APP)


def member(principal: str, **roles: Role) -> Caller:
    return Caller(principal, None, frozenset({Scope.READ, Scope.WRITE}), roles=dict(roles))


DEV = member("dev", shop=Role.DEVELOPER)


def builds(cp: ControlPlane) -> int:
    with cp.ctx.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Build)) or 0)


def test_a_build_is_queued_with_its_detected_stack_and_audited(cp: ControlPlane, artifact: str) -> None:
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score(), settings={"replicas": 2})
    assert (b["state"], b["app"], b["stack"], b["deploy"]) == ("queued", "orders", "python", True)
    assert b["time_limit_seconds"] == 600
    assert b["release"] is None
    assert b["image"] is None
    assert b["id"].startswith("b")
    assert len(b["id"]) == 13
    with cp.ctx.db.transaction() as s:
        row = s.get(Build, b["id"])
        assert row is not None
        assert row.deploy is not None
        assert row.deploy["settings"]["replicas"] == 2
        assert row.log_path.endswith(f"builds/{b['id']}.log")
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "build.start")).one()
        assert (audit.actor, audit.target, audit.detail["build"]) == ("dev", "shop/dev/orders", b["id"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"score": {"apiVersion": "score.dev/v1b1", "metadata": {}}}, "metadata.name"),
        ({"score": score(), "settings": {"replicas": -1}}, "replicas"),
        ({"score": score(), "stack": "cobol"}, "stack"),
        ({"score": score(), "app": "other"}, "app"),
        ({"app": "Not_A_Label"}, "app"),
        ({}, "app"),
        ({"app": "orders", "settings": {"replicas": 1}}, "settings"),
        ({"score": score(), "time_limit_seconds": 10**6}, "time_limit_seconds"),
    ],
)
def test_a_request_a_deploy_would_refuse_is_422_naming_the_field_and_queues_nothing(
    cp: ControlPlane, artifact: str, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(UserError) as raised:
        cp.builds.start(DEV, "shop", "dev", artifact=artifact, **kwargs)  # type: ignore[arg-type]
    assert any(p.path.startswith(field) or field in p.path for p in raised.value.problems), raised.value
    assert builds(cp) == 0


def test_an_unknown_stack_names_the_supported_stacks_and_how_to_choose(
    cp: ControlPlane, artifact: str
) -> None:
    with pytest.raises(UserError) as raised:
        cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score(), stack="cobol")
    assert "supported: python, node, java, tomcat, static" in str(raised.value)


def test_a_source_no_stack_recognises_is_refused_before_queueing(cp: ControlPlane, tmp_path: Path) -> None:
    digest = upload_source(cp, tmp_path / "odd", {"notes.txt": "nothing to build\n"})
    with pytest.raises(UserError) as raised:
        cp.builds.start(DEV, "shop", "dev", artifact=digest, score=score())
    assert "--stack" in str(raised.value)
    assert builds(cp) == 0


def test_an_artifact_that_was_not_uploaded_is_422(cp: ControlPlane) -> None:
    with pytest.raises(UserError) as raised:
        cp.builds.start(DEV, "shop", "dev", artifact="sha256:" + "0" * 64, score=score())
    assert raised.value.problems[0].path == "artifact"
    assert builds(cp) == 0


def test_the_per_project_bound_counts_queued_and_running_builds(cp: ControlPlane, artifact: str) -> None:
    first = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    cp.builds.start(DEV, "shop", "dev", artifact=artifact, app="orders")
    with pytest.raises(Conflict) as raised:
        cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    assert "at most 2" in raised.value.message
    assert "YUNZHOU_BUILD_MAX_ACTIVE" in raised.value.message
    assert builds(cp) == 2
    cp.builds.start(SYSTEM, "bank", "dev", artifact=artifact, app="ledger")  # another project's own bound
    cp.builds.cancel(DEV, first["id"])  # a finished build no longer counts
    assert cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())["state"] == "queued"


def test_a_viewer_reads_builds_but_neither_starts_nor_cancels_them(cp: ControlPlane, artifact: str) -> None:
    viewer = member("vera", shop=Role.VIEWER)
    with pytest.raises(Forbidden):
        cp.builds.start(viewer, "shop", "dev", artifact=artifact, score=score())
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    assert cp.builds.get(viewer, b["id"])["id"] == b["id"]
    assert cp.builds.log(viewer, b["id"], 0)["text"] == ""
    with pytest.raises(Forbidden):
        cp.builds.cancel(viewer, b["id"])
    assert cp.builds.get(DEV, b["id"])["state"] == "queued"


def test_another_projects_member_is_told_the_build_does_not_exist(cp: ControlPlane, artifact: str) -> None:
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    stranger = member("eve", bank=Role.OWNER)
    attempts: list[Callable[[], object]] = [
        lambda: cp.builds.get(stranger, b["id"]),
        lambda: cp.builds.log(stranger, b["id"], 0),
        lambda: cp.builds.cancel(stranger, b["id"]),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as raised:
            attempt()
        assert raised.value.message == f"build {b['id']!r} not found"
    assert cp.builds.get(DEV, b["id"])["state"] == "queued"


def test_cancelling_a_queued_build_ends_it_at_once(cp: ControlPlane, artifact: str) -> None:
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    cancelled = cp.builds.cancel(DEV, b["id"])
    assert cancelled["state"] == "cancelled"
    assert "cancelled by dev" in cancelled["error"]
    assert cancelled["finished_at"] is not None
    assert cp.builds.cancel(DEV, b["id"])["state"] == "cancelled"  # again: nothing changes


def test_the_log_is_read_from_an_offset_and_done_only_when_the_build_finished(
    cp: ControlPlane, artifact: str
) -> None:
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    path = cp.data_dir / "builds" / f"{b['id']}.log"
    path.parent.mkdir()
    path.write_text("step 1\nstep 2\n")
    page = cp.builds.log(DEV, b["id"], 0)
    assert (page["text"], page["next_offset"], page["done"]) == ("step 1\nstep 2\n", 14, False)
    assert cp.builds.log(DEV, b["id"], 7)["text"] == "step 2\n"
    cp.builds.cancel(DEV, b["id"])
    assert cp.builds.log(DEV, b["id"], 14) == {
        "text": "", "offset": 14, "next_offset": 14, "state": "cancelled", "done": True,
    }  # fmt: skip
    assert cp.builds.log(DEV, b["id"], 0)["done"] is True


def test_builds_are_listed_newest_first_and_by_app(cp: ControlPlane, artifact: str, tmp_path: Path) -> None:
    cp.build_policy = BuildPolicy(max_active_per_project=5)
    first = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    assert isinstance(cp.ctx.clock, UnixClock)
    cp.ctx.clock.t += 1
    second = cp.builds.start(DEV, "shop", "dev", artifact=artifact, app="billing")
    assert [b["id"] for b in cp.builds.list(DEV, "shop", "dev", None)] == [second["id"], first["id"]]
    assert [b["id"] for b in cp.builds.list(DEV, "shop", "dev", "orders")] == [first["id"]]


def test_a_log_page_never_ends_inside_a_character_the_builder_is_still_writing(
    cp: ControlPlane, artifact: str
) -> None:
    b = cp.builds.start(DEV, "shop", "dev", artifact=artifact, score=score())
    path = cp.data_dir / "builds" / f"{b['id']}.log"
    path.parent.mkdir()
    whole = "编译 ok ✓\n".encode()
    path.write_bytes(whole[:-3])  # the check mark's first two bytes written, not its last
    page = cp.builds.log(DEV, b["id"], 0)
    assert page["text"] == "编译 ok "
    path.write_bytes(whole)
    rest = cp.builds.log(DEV, b["id"], page["next_offset"])
    assert rest["text"] == "✓\n"
    assert rest["next_offset"] == len(whole)


def test_the_build_settings_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    from yunzhou.reconcile.builds import build_concurrency

    policy = BuildPolicy.from_env({"YUNZHOU_BUILD_MAX_ACTIVE": "3", "YUNZHOU_BUILD_TIME_LIMIT": "60"})
    assert (policy.max_active_per_project, policy.time_limit_seconds, policy.max_time_limit_seconds) == (
        3,
        60,
        7200,
    )
    assert BuildPolicy.from_env({}) == BuildPolicy()
    assert build_concurrency({}) == 1
    assert build_concurrency({"YUNZHOU_BUILD_CONCURRENCY": "2"}) == 2
    with pytest.raises(ValueError, match="YUNZHOU_BUILD_MAX_ACTIVE='0'"):
        BuildPolicy.from_env({"YUNZHOU_BUILD_MAX_ACTIVE": "0"})
    with pytest.raises(ValueError, match="YUNZHOU_BUILD_CONCURRENCY='many'"):
        build_concurrency({"YUNZHOU_BUILD_CONCURRENCY": "many"})


def test_a_stranger_starting_a_build_is_told_the_project_does_not_exist(
    cp: ControlPlane, artifact: str
) -> None:
    with pytest.raises(NotFound) as raised:
        cp.builds.start(member("eve", bank=Role.OWNER), "shop", "dev", artifact=artifact, score=score())
    assert raised.value.message == "project 'shop' not found"
    assert builds(cp) == 0
