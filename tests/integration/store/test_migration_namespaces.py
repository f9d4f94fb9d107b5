"""Migration 0010 on a database where two environments already share a cluster namespace: it stops
before changing anything and names them (which one moves is the operator's choice). Both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from yunzhou.store import Database
from yunzhou.store.migrate import current_revision, downgrade, upgrade
from yunzhou.store.models import Environment, Project

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_shared_namespaces_stop_the_upgrade_with_their_names(database: Database) -> None:
    downgrade(database.engine, "0009")
    with database.engine.begin() as conn:
        for project, env in (("shop", "prod-eu"), ("shop-prod", "eu")):
            pid = conn.execute(
                Project.__table__.insert().values(
                    name=project, display_name=project, created_at=T0, version=1
                )
            ).inserted_primary_key[0]
            conn.execute(
                Environment.__table__.insert().values(
                    project_id=pid,
                    name=env,
                    target="cluster:prod",
                    namespace="shop-prod-eu",
                    created_at=T0,
                    version=1,
                )
            )
    with pytest.raises(RuntimeError) as stopped:
        upgrade(database.engine)
    assert "cluster:prod namespace shop-prod-eu: shop-prod/eu" in str(stopped.value)
    assert "cluster:prod namespace shop-prod-eu: shop/prod-eu" in str(stopped.value)
    assert current_revision(database.engine) == "0009"
    with database.engine.begin() as conn:
        conn.execute(Environment.__table__.delete().where(Environment.name == "eu"))
    upgrade(database.engine)
    assert current_revision(database.engine) != "0009"
