"""Persistence: SQLAlchemy models, the Database (engine + transactions), migrations and leases."""

from yunzhou.store.db import Database, sqlite_url
from yunzhou.store.migrate import upgrade

__all__ = ["Database", "sqlite_url", "upgrade"]
