"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database


def score(name: str = "orders", image: str = "python:3.11", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": {"image": image, **container}},
        "service": {"ports": {"web": {"port": 8080}}},
    }


class UnixClock:
    """A service clock (``() -> datetime``) the test moves by setting ``t`` (unix seconds)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


def control_plane_with_app(
    database: Database, data_dir: Path, clock: UnixClock, settings: dict[str, Any] | None = None
) -> ControlPlane:
    """A control plane on ``database`` with project shop, environment dev (local) and app orders
    deployed with ``settings``."""
    data_dir.mkdir()
    cp = ControlPlane.create(database, data_dir, clock=clock)
    cp.projects.create(SYSTEM, "shop")
    cp.projects.create_environment(SYSTEM, "shop", "dev", "local", None)
    cp.apps.deploy(SYSTEM, "shop", "dev", score(), settings, None)
    return cp
