"""Engine and transactions. SQLite is the embedded default; PostgreSQL is selected by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from yunzhou.domain.errors import Conflict, PermanentError, TemporaryError


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+pysqlite:///{data_dir / 'state.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed during a write; synchronous=FULL makes every commit durable.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers serialise instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Owns the engine; hands out one session per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back on any exception; library errors become domain errors."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except StaleDataError as exc:
            raise Conflict("the object was changed by someone else meanwhile; reload and retry") from exc
        except OperationalError as exc:
            if "locked" in str(exc) or "could not serialize" in str(exc):
                raise TemporaryError("the database is busy; retry shortly", retry_after=1.0) from exc
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def check_integrity(db: Database) -> str:
    """``PRAGMA quick_check`` of an SQLite database at start: what it found when all is well (for the log);
    a PermanentError naming the file and how to recover when a page is damaged, so the server refuses to
    start instead of failing later on whichever request touches the page."""
    if db.dialect != "sqlite":
        return f"{db.dialect}: integrity is the database server's own"
    path = db.engine.url.database or ":memory:"
    try:
        with db.engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
    except DatabaseError as exc:  # a damaged header or first page fails before the check can run
        rows = [str(exc.orig or exc).splitlines()[0]]
    if rows == ["ok"]:
        return f"{path}: PRAGMA quick_check ok"
    rows = [line for row in rows for line in row.splitlines() if not line.startswith("***")] or rows
    raise PermanentError(
        f"the state database {path} is damaged (PRAGMA quick_check: {rows[0]}"
        f"{f' and {len(rows) - 1} more problems' if len(rows) > 1 else ''}); stop the server, keep a copy, "
        f"then restore a backup or salvage it with `sqlite3 {path} .recover | sqlite3 recovered.db` and put "
        f"recovered.db in its place (docs/architecture.md)"
    )
