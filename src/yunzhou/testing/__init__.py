"""Test doubles and real-server launchers shipped with Yunzhou, for its own suite and for users'."""

from yunzhou.testing.postgres import (
    PostgresError,
    PostgresNotFoundError,
    PostgresServer,
    find_postgres_bin,
    start_postgres,
)
from yunzhou.testing.server import ControlPlaneProcess, free_port

__all__ = [
    "ControlPlaneProcess",
    "PostgresError",
    "PostgresNotFoundError",
    "PostgresServer",
    "find_postgres_bin",
    "free_port",
    "start_postgres",
]
