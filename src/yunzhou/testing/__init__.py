"""Test doubles and real-server launchers shipped with Yunzhou, for its own suite and for users'."""

from yunzhou.testing.postgres import (
    PostgresError,
    PostgresNotFoundError,
    PostgresServer,
    find_postgres_bin,
    start_postgres,
)

__all__ = [
    "PostgresError",
    "PostgresNotFoundError",
    "PostgresServer",
    "find_postgres_bin",
    "start_postgres",
]
