"""Persistence: SQLAlchemy models, the Database (engine + transactions), migrations and leases."""

from yunzhou.store.db import Database, check_integrity, sqlite_url
from yunzhou.store.files import keep_private
from yunzhou.store.migrate import upgrade

__all__ = ["Database", "check_integrity", "keep_private", "sqlite_url", "upgrade"]
