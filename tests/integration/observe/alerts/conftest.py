from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import BACKENDS
from tests.integration.observe.alerts.receivers import Mailbox
from yunzhou.store import sqlite_url
from yunzhou.testing import PostgresServer
from yunzhou.testing.server import free_port


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Alert state lives in the control plane's database: both backends (the observe suite's default is
    SQLite only, for the log store's sake)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A plain SMTP server (aiosmtpd) on loopback: its mailbox and port."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()
