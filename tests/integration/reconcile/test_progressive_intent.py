"""What the app controller hands a runtime during a canary / blue-green rollout, read from a real database
(SQLite and PostgreSQL): the intent carries the release the rollout replaces, so a runtime that did not
apply that release itself (a restarted control plane) can run the rollout against it; any other rollout
carries none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from tests.helpers import UnixClock, control_plane_with_app, score
from yunzhou.reconcile.apps import AppController
from yunzhou.services import SYSTEM
from yunzhou.store import Database
from yunzhou.store.models import App

CANARY = {"rollout": {"strategy": "canary", "steps": [{"weight": 20, "pause": "1m"}]}}


def test_a_canary_in_progress_carries_the_release_it_replaces(database: Database, tmp_path: Path) -> None:
    cp = control_plane_with_app(database, tmp_path / "data", UnixClock(), {"replicas": 2})
    controller = AppController(database, {}, cp.data_dir, lambda: datetime.now(UTC))
    with database.transaction() as s:
        app_id = s.scalar(select(App.id).where(App.name == "orders"))
    assert app_id is not None
    loaded = controller._load(app_id)
    assert loaded is not None
    assert loaded[0].previous is None  # the first release replaces nothing
    with database.transaction() as s:  # release 1 converged, as the controller records it
        s.execute(update(App).where(App.id == app_id).values(current_release=1))

    cp.apps.deploy(SYSTEM, "shop", "dev", score(image="python:3.12"), {**CANARY, "replicas": 2}, None)
    loaded = controller._load(app_id)
    assert loaded is not None
    intent = loaded[0]
    assert intent.release == 2
    assert intent.previous is not None
    assert intent.previous.release == 1
    assert intent.previous.score["containers"]["web"]["image"] == "python:3.11"
    assert intent.previous.settings["rollout"]["strategy"] == "rolling"  # release 1 as it was deployed
    assert intent.previous.routes == intent.routes
    assert intent.previous.previous is None

    cp.apps.deploy(SYSTEM, "shop", "dev", score(image="python:3.13"), {"replicas": 2}, None)
    loaded = controller._load(app_id)
    assert loaded is not None
    assert loaded[0].release == 3
    assert loaded[0].previous is None  # a rolling update: the runtime's own rolling is enough
