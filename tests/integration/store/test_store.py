"""The store on both backends: migrations, optimistic concurrency, immutable releases, leases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from yunzhou.domain.errors import Conflict
from yunzhou.store import Database
from yunzhou.store.leases import enqueue, lease_due, release
from yunzhou.store.migrate import current_revision, downgrade, head_revision, upgrade
from yunzhou.store.models import App, Environment, Project, Release, WorkItem

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _app(db: Database) -> int:
    with db.transaction() as s:
        p = Project(name="shop", display_name="shop", created_at=T0)
        s.add(p)
        s.flush()
        e = Environment(project_id=p.id, name="dev", target="local", created_at=T0)
        s.add(e)
        s.flush()
        a = App(
            environment_id=e.id,
            name="orders",
            desired_release=1,
            replicas=1,
            created_at=T0,
            updated_at=T0,
            conditions=[],
        )
        s.add(a)
        s.flush()
        return a.id


def test_migrations_reach_head_and_go_back_down(database: Database) -> None:
    assert current_revision(database.engine) == head_revision()
    tables = set(inspect(database.engine).get_table_names())
    assert {
        "projects",
        "environments",
        "apps",
        "releases",
        "rollouts",
        "audit_events",
        "tokens",
        "work_items",
    } <= tables
    downgrade(database.engine, "base")
    assert "apps" not in inspect(database.engine).get_table_names()
    upgrade(database.engine)
    assert current_revision(database.engine) == head_revision()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_durable_and_checked(database: Database) -> None:
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# SQLite serialises writers up front (BEGIN IMMEDIATE), so a stale in-flight write is PostgreSQL's case.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_concurrent_writers_of_one_row_one_wins(database: Database) -> None:
    app_id = _app(database)
    first_read = threading.Event()
    second_done = threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with database.transaction() as s:
                a = s.get(App, app_id)
                assert a is not None
                s.refresh(a)
                first_read.set()
                second_done.wait(10)
                a.replicas = 7
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert first_read.wait(10)
    with database.transaction() as s:
        a = s.get(App, app_id)
        assert a is not None
        a.replicas = 3
    second_done.set()
    t.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], Conflict)
    with database.transaction() as s:
        assert s.get(App, app_id).replicas == 3  # type: ignore[union-attr]


def test_version_counter_moves_on_every_update(database: Database) -> None:
    app_id = _app(database)
    with database.transaction() as s:
        a = s.get(App, app_id)
        assert a is not None
        before = a.version
        a.replicas = 2
    with database.transaction() as s:
        assert s.get(App, app_id).version == before + 1  # type: ignore[union-attr]
        # a write that names a stale version changes nothing
        stale = s.execute(
            text("UPDATE apps SET replicas = 9 WHERE id = :id AND version = :v"), {"id": app_id, "v": before}
        )
        assert stale.rowcount == 0  # type: ignore[attr-defined]


def test_releases_cannot_be_edited(database: Database) -> None:
    app_id = _app(database)
    with database.transaction() as s:
        s.add(
            Release(
                app_id=app_id,
                number=1,
                score={},
                settings={},
                artifact=None,
                image="x",
                cause="deploy",
                changes=[],
                created_at=T0,
                created_by="t",
            )
        )

    def tamper() -> None:
        with database.transaction() as s:
            r = s.scalar(select(Release))
            assert r is not None
            r.cause = "tampered"

    with pytest.raises(RuntimeError, match="immutable"):
        tamper()
    with database.transaction() as s:
        assert s.scalar(select(Release.cause)) == "deploy"


def test_leases_are_exclusive_expire_and_keep_new_intent(database: Database) -> None:
    ttl = timedelta(seconds=30)
    with database.transaction() as s:
        enqueue(s, "app", "1", T0)
    with database.transaction() as s:
        first = lease_due(s, "app", T0, ttl)
    with database.transaction() as s:
        assert lease_due(s, "app", T0 + timedelta(seconds=1), ttl) == []  # held
    assert len(first) == 1
    # intent arrives while the pass runs: finishing must not drop it
    with database.transaction() as s:
        enqueue(s, "app", "1", T0 + timedelta(seconds=2))
    with database.transaction() as s:
        release(s, first[0], T0 + timedelta(seconds=3), requeue_after=None)
    with database.transaction() as s:
        again = lease_due(s, "app", T0 + timedelta(seconds=3), ttl)
    assert len(again) == 1
    assert again[0].generation == 2
    # a crashed worker: its lease expires and someone else takes the item
    with database.transaction() as s:
        taken_over = lease_due(s, "app", T0 + timedelta(seconds=40), ttl)
    assert len(taken_over) == 1
    assert taken_over[0].token != again[0].token
    with database.transaction() as s:
        release(s, again[0], T0 + timedelta(seconds=41), requeue_after=None)  # stale token: ignored
        release(s, taken_over[0], T0 + timedelta(seconds=41), requeue_after=None)
    with database.transaction() as s:
        assert s.scalar(select(WorkItem)) is None


def test_failed_pass_is_retried_later_with_the_error_recorded(database: Database) -> None:
    ttl = timedelta(seconds=30)
    with database.transaction() as s:
        enqueue(s, "app", "7", T0)
    with database.transaction() as s:
        (lease,) = lease_due(s, "app", T0, ttl)
        release(s, lease, T0, requeue_after=timedelta(seconds=5), error="boom")
    with database.transaction() as s:
        assert lease_due(s, "app", T0 + timedelta(seconds=4), ttl) == []
        item = s.scalar(select(WorkItem))
        assert item is not None
        assert item.last_error == "boom"
        assert item.attempts == 1
    with database.transaction() as s:
        assert len(lease_due(s, "app", T0 + timedelta(seconds=5), ttl)) == 1
