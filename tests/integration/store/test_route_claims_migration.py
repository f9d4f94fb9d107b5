"""Migration 0011 claims the routes of a store written before hosts were owned (issue 14, item 2): in app
order, a contested host to the oldest app, never failing on old conflicts. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from yunzhou.store import Database
from yunzhou.store.migrate import downgrade, upgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def table(name: str, columns: str, json: str = "") -> sa.TableClause:
    """A table as it is at migration 0010, only the columns a row needs (JSON ones bound as JSON)."""
    return sa.table(
        name, *(sa.column(c) for c in columns.split()), *(sa.column(c, sa.JSON) for c in json.split())
    )


PROJECTS = table("projects", "id name display_name created_at version")
ENVS = table("environments", "id project_id name target created_at version")
APPS = table(
    "apps",
    "id environment_id name desired_release replicas removing ready_replicas status"
    " created_at updated_at version",
    "conditions",
)
RELEASES = table("releases", "app_id number cause created_at created_by", "score settings changes config")


def add_app(conn: sa.Connection, app_id: int, env_id: int, name: str, *releases: dict[str, Any]) -> None:
    conn.execute(
        APPS.insert().values(
            id=app_id,
            environment_id=env_id,
            name=name,
            desired_release=len(releases),
            replicas=1,
            removing=False,
            ready_replicas=0,
            status="running",
            conditions=[],
            created_at=T0,
            updated_at=T0,
            version=1,
        )
    )
    for number, settings in enumerate(releases, 1):
        conn.execute(
            RELEASES.insert().values(
                app_id=app_id,
                number=number,
                score={},
                settings=settings,
                cause="deploy",
                changes=[],
                created_at=T0,
                created_by="t",
                config={},
            )
        )


def test_existing_routes_are_claimed_oldest_app_first_and_old_conflicts_are_left_unclaimed(
    database: Database,
) -> None:
    downgrade(database.engine, "0010")
    with database.engine.begin() as conn:
        for pid, name in ((1, "shop"), (2, "evil")):
            conn.execute(
                PROJECTS.insert().values(id=pid, name=name, display_name=name, created_at=T0, version=1)
            )
            conn.execute(
                ENVS.insert().values(
                    id=pid, project_id=pid, name="dev", target="local", created_at=T0, version=1
                )
            )
        add_app(
            conn,
            1,
            1,
            "web",
            {"routes": [{"host": "old.example.test"}]},
            {"routes": [{"host": "shop.example.test", "path": "/"}]},
        )
        add_app(
            conn,
            2,
            1,
            "api",
            {
                "routes": [
                    {"host": "shop.example.test", "path": "/api/"},
                    {"host": "shop.example.test", "path": "/"},
                ]
            },
        )
        add_app(
            conn,
            3,
            2,
            "grab",
            {
                "routes": [{"host": "shop.example.test", "path": "/x"}],
                "rollout": {"previewHost": "p.example.test"},
            },
        )
    upgrade(database.engine)
    with database.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT host, path, app_id, project_id FROM route_claims ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("shop.example.test", "/", 1, 1),  # the desired release's routes, not older ones
        ("shop.example.test", "/api", 2, 1),  # same project, another path: its own
        ("p.example.test", "/", 3, 2),  # another project's host is not claimed for it; its free preview is
    ]
