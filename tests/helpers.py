"""Small builders shared by tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database
from yunzhou.testing import free_port
from yunzhou.testing.polling import wait_until


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


@contextmanager
def served(app: Any, timeout: float = 60.0) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread of this process: its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started, timeout=timeout)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def upload_source(cp: ControlPlane, folder: Path, files: dict[str, str]) -> str:
    """Write ``files`` into ``folder``, upload it as an artifact through the service; its digest."""
    from yunzhou.client import build_artifact

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    with cp.artifacts.receiving() as (path, handle):
        handle.write(build_artifact(folder))
        handle.close()
        digest: str = cp.artifacts.upload(SYSTEM, path)["digest"]
    return digest
