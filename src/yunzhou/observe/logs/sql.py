"""The log database: schema, batched inserts, retention and queries on one ``sqlite3`` connection.

Kept separate from the state DB on purpose: its own file, WAL and ``synchronous=NORMAL`` (a crash may
lose the last few lines, never the control plane's state), written by one thread only.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunzhou.observe.logs.records import split_address

SCHEMA_VERSION = 1
SMALL_TIME_WINDOW = 100_000  # records in a since/until window that are sorted rather than walked
TRIGRAM = 3  # the trigram index finds substrings of at least this many characters
_DELETE_CHUNK = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused, so they are a cursor
    app_id INTEGER NOT NULL REFERENCES apps (id),
    time REAL NOT NULL,
    instance TEXT,
    release INTEGER,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    fields TEXT
);
CREATE INDEX IF NOT EXISTS logs_by_app ON logs (app_id);
CREATE INDEX IF NOT EXISTS logs_by_app_time ON logs (app_id, time);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# The index is kept in step by the writer with set-based statements (a per-row trigger costs 5x as much).
_FTS_SCHEMA = """
BEGIN;
CREATE VIRTUAL TABLE logs_fts USING fts5(
    line, content='logs', content_rowid='id', tokenize='trigram case_sensitive 0'
);
INSERT INTO logs_fts (logs_fts) VALUES ('rebuild');
COMMIT;
"""
_COLUMNS = "l.id, l.time, l.instance, l.release, l.stream, l.line, l.fields"


class SchemaTooNew(Exception):
    """The file was written by a newer Yunzhou."""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: index merges touch many pages
    return conn


def create_schema(conn: sqlite3.Connection, *, full_text: bool | None) -> bool:
    """Create what is missing; returns whether the full-text (trigram) index is in use.

    ``full_text=None`` uses it when this SQLite has FTS5 with the trigram tokenizer; ``False`` never does
    (the LIKE fallback, also used to test that path).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"log database schema {version} is newer than this Yunzhou's ({SCHEMA_VERSION})")
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if _has_table(conn, "logs_fts"):
        return True
    if full_text is False:
        return False
    try:
        conn.executescript(_FTS_SCHEMA)
    except sqlite3.OperationalError:  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if full_text:
            raise
        return False
    return True


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row is not None


class AppIds:
    """address → apps.id, cached (the writer's connection only); None for what is not an app address."""

    def __init__(self) -> None:
        self._ids: dict[str, int | None] = {}

    def get(self, conn: sqlite3.Connection, address: str) -> int | None:
        try:
            return self._ids[address]
        except KeyError:
            pass
        found: int | None = None
        if isinstance(address, str) and split_address(address) is not None:
            conn.execute("INSERT OR IGNORE INTO apps (address) VALUES (?)", (address,))
            found = conn.execute("SELECT id FROM apps WHERE address = ?", (address,)).fetchone()[0]
        if len(self._ids) < 100_000:  # bounded: a flood of bad addresses must not grow it forever
            self._ids[address] = found
        return found


Row = tuple[int, float, str | None, int | None, str, str, str | None]  # app_id, time, instance, …


_INSERT_ROW = (
    "INSERT INTO logs (app_id, time, instance, release, stream, line, fields) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
# What one bad row can raise; it must not cost the rest of its batch.
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError)


def insert(
    conn: sqlite3.Connection, rows: Sequence[Row], checkpoints: dict[str, str], *, full_text: bool
) -> int:
    """One transaction: the rows, their index entries, then the checkpoints that say how far their sources
    were read. Returns how many rows were stored: a row the database refuses is left out, the others stay.
    """
    try:
        return _insert(conn, rows, checkpoints, full_text=full_text, row_by_row=False)
    except _ROW_ERRORS:
        return _insert(conn, rows, checkpoints, full_text=full_text, row_by_row=True)


def _insert(
    conn: sqlite3.Connection,
    rows: Sequence[Row],
    checkpoints: dict[str, str],
    *,
    full_text: bool,
    row_by_row: bool,
) -> int:
    stored = len(rows)
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = last_id(conn)
        if not row_by_row:
            conn.executemany(_INSERT_ROW, rows)
        else:
            for row in rows:
                try:
                    conn.execute(_INSERT_ROW, row)
                except _ROW_ERRORS:
                    stored -= 1
        if full_text:
            conn.execute(
                "INSERT INTO logs_fts (rowid, line) SELECT id, line FROM logs WHERE id > ?", (before,)
            )
        conn.executemany(_INSERT_CHECKPOINT, checkpoints.items())
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return stored


def enforce_retention(
    conn: sqlite3.Connection, *, max_records: int | None, oldest_time: float | None, full_text: bool
) -> int:
    """Delete, per app, records older than ``oldest_time`` and all but the newest ``max_records``."""
    deleted = 0
    for (app_id,) in conn.execute("SELECT id FROM apps").fetchall():
        if oldest_time is not None:
            deleted += _delete_chunked(
                conn,
                "SELECT id FROM logs WHERE app_id = ? AND time < ? LIMIT ?",
                (app_id, oldest_time, _DELETE_CHUNK),
                full_text=full_text,
            )
        if max_records is not None:
            cut = conn.execute(
                "SELECT id FROM logs WHERE app_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (app_id, max_records),
            ).fetchone()
            if cut is not None:
                deleted += _delete_chunked(
                    conn,
                    "SELECT id FROM logs WHERE app_id = ? AND id <= ? ORDER BY id LIMIT ?",
                    (app_id, cut[0], _DELETE_CHUNK),
                    full_text=full_text,
                )
    return deleted


def _delete_chunked(
    conn: sqlite3.Connection, select_ids: str, params: tuple[Any, ...], *, full_text: bool
) -> int:
    total = 0
    while True:  # small transactions: readers and the WAL never see one huge delete
        conn.execute("BEGIN IMMEDIATE")
        try:
            if full_text:  # an external-content index is told what it indexed for the rows that go
                conn.execute(
                    "INSERT INTO logs_fts (logs_fts, rowid, line)"  # noqa: S608 - fixed fragments only
                    f" SELECT 'delete', id, line FROM logs WHERE id IN ({select_ids})",
                    params,
                )
            count = conn.execute(f"DELETE FROM logs WHERE id IN ({select_ids})", params).rowcount  # noqa: S608
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        total += count
        if count < params[-1]:
            return total


def read_checkpoint(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class Filters:
    """What ``query`` selects; every filter is a fixed property of a record (so a cursor can skip)."""

    since: float | None = None
    until: float | None = None
    grep: str | None = None
    instance: str | None = None
    stream: str | None = None


def last_id(conn: sqlite3.Connection) -> int:
    """The highest id ever given (deleted or not)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'logs'").fetchone()
    return 0 if row is None else int(row[0])


def app_id(conn: sqlite3.Connection, address: str) -> int | None:
    row = conn.execute("SELECT id FROM apps WHERE address = ?", (address,)).fetchone()
    return None if row is None else int(row[0])


def select(
    conn: sqlite3.Connection,
    app: tuple[int, str],
    filters: Filters,
    *,
    after_id: int | None,
    limit: int,
    full_text: bool,
) -> list[dict[str, Any]]:
    """Matching records of ``app`` (id, address) in id order: the first ``limit`` after ``after_id``,
    or without a cursor the newest ``limit``."""
    where = ["l.app_id = ?"]
    params: list[Any] = [app[0]]
    source = "logs AS l"
    order_key = "l.id"
    if filters.grep:
        if full_text and len(filters.grep) >= TRIGRAM:
            # Drive the query from the index, in rowid order, so that LIMIT stops it early.
            source = "logs_fts AS f CROSS JOIN logs AS l ON l.id = f.rowid"
            order_key = "f.rowid"
            where.append("logs_fts MATCH ?")
            params.append(fts_phrase(filters.grep))
        else:
            where.append("l.line LIKE ? ESCAPE '\\'")
            params.append(like_pattern(filters.grep))
    time_column = "+l.time"  # unary plus: walk the app's records in id order, so that LIMIT stops early
    if source == "logs AS l" and _small_time_window(conn, app[0], filters):
        source, time_column = "logs AS l INDEXED BY logs_by_app_time", "l.time"
    for column, op, value in (
        (time_column, ">=", filters.since),
        (time_column, "<", filters.until),
        ("l.instance", "=", filters.instance),
        ("l.stream", "=", filters.stream),
        (order_key, ">", after_id),
    ):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    newest_first = after_id is None
    sql = (
        f"SELECT {_COLUMNS} FROM {source} WHERE {' AND '.join(where)}"  # noqa: S608 - fixed fragments only
        f" ORDER BY {order_key} {'DESC' if newest_first else 'ASC'} LIMIT ?"
    )
    params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    if newest_first:
        rows.reverse()
    project, env, name = app[1].split("/", 2)
    return [_record(row, project, env, name) for row in rows]


def _small_time_window(conn: sqlite3.Connection, app_id: int, filters: Filters) -> bool:
    """Whether few of the app's records fall between ``since`` and ``until``: then the time index finds
    them faster than walking all the app's records newest first."""
    if filters.since is None and filters.until is None:
        return False
    since = -math.inf if filters.since is None else filters.since
    until = math.inf if filters.until is None else filters.until
    count = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM logs INDEXED BY logs_by_app_time"
        " WHERE app_id = ? AND time >= ? AND time < ? LIMIT ?)",
        (app_id, since, until, SMALL_TIME_WINDOW),
    ).fetchone()[0]
    return bool(count < SMALL_TIME_WINDOW)


def fts_phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: every character literal (quotes doubled), no operators."""
    return '"' + text.replace('"', '""') + '"'


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own wildcards escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _record(row: Sequence[Any], project: str, env: str, app: str) -> dict[str, Any]:
    record_id, time, instance, release, stream, line, fields = row
    return {
        "id": record_id,
        "time": time,
        "project": project,
        "env": env,
        "app": app,
        "instance": instance,
        "release": release,
        "stream": stream,
        "line": line,
        "fields": json.loads(fields) if fields else {},
    }
