"""Segment files: the log store is a directory of SQLite files, each holding the records of one id range.

``seg-<first id>.db`` holds the records from its first id up to the next segment's first id. Only the
newest segment is written; older ones are sealed and never change again, so retention deletes a whole
file (no row-by-row delete, no index maintenance, disk space returned at once) and a query skips the
segments outside its id or time range. Each segment is self-contained: records, trigram index, field
index, the app ids (copied forward, so an app keeps its id) and the readers' checkpoints.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 2
_NAME = re.compile(r"^seg-(\d{16})\.db$")
SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,  -- given by the writer: increasing across segments, never reused
    app_id INTEGER NOT NULL,
    time REAL NOT NULL,
    instance TEXT,
    release INTEGER,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    fields  -- NULL: no fields, 1: the line itself is the JSON object, else the fields as JSON text
);
CREATE INDEX IF NOT EXISTS logs_by_app ON logs (app_id);
CREATE INDEX IF NOT EXISTS logs_by_app_time ON logs (app_id, time);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    first_id INTEGER NOT NULL,
    min_time REAL,
    max_time REAL
);
"""
# detail=none: the index keeps which records hold a trigram, not where (a third of the size and cost);
# a search ANDs the needle's trigrams and checks the candidates' text. columnsize=0: no per-row sizes.
# fields_fts holds one token per (key, value) of a JSON record's top-level scalars, and one per (key,
# magnitude bucket) of its numbers (see sql.field_tokens): an LSM index, far cheaper to fill than a
# b-tree ordered by (key, value, id), whose inserts land all over the file.
_FTS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(line, content='logs', content_rowid='id',"
    " tokenize='trigram case_sensitive 0', detail=none, columnsize=0)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS fields_fts USING fts5(tokens, content='', detail=none,"
    " columnsize=0, tokenize='unicode61')",
)


# Fewer, larger merges of the FTS5 b-trees: a level is merged once it holds 16 segments (default 4), and
# a writer only stops to merge everything at 32 (default 16). Each batch's commit adds a segment, so at
# the default settings merging was half the trigram index's cost; a query reads a few more (small,
# detail=none) segments per term instead, which measured no slower at 1M lines.
FTS_MERGE_OPTIONS = (("automerge", 16), ("crisismerge", 32))


class SchemaTooNew(Exception):
    """A segment was written by a newer Yunzhou."""


@dataclass(frozen=True, order=True)
class Segment:
    first_id: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def segment_path(directory: Path, first_id: int) -> Path:
    return directory / f"seg-{first_id:016d}.db"


def list_segments(directory: Path) -> list[Segment]:
    """The segments in ``directory``, oldest first."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            found.append(Segment(int(match.group(1)), directory / name))
    return sorted(found)


def segment_bytes(segment: Segment) -> int:
    """What the segment's data takes on disk, its WAL included (not the fixed-size shared-memory file)."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += (segment.path.parent / (segment.name + suffix)).stat().st_size
    return total


def delete_segment(segment: Segment) -> None:
    for suffix in ("", *SIDE_FILES):  # the main file first: a reader can no longer open it
        (segment.path.parent / (segment.name + suffix)).unlink(missing_ok=True)


def remove_orphans(directory: Path) -> None:
    """WAL/shm files a reader re-created for a segment that was deleted meanwhile."""
    for entry in directory.glob("seg-*.db-*"):
        main = entry.name.rsplit("-", 1)[0]
        if not (directory / main).exists():
            entry.unlink(missing_ok=True)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to a segment; readers never create a file (mode=rw fails when it is gone)."""
    uri = f"file:{path}?mode={'rw' if readonly else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: index merges touch many pages
    return conn


def create_segment(
    path: Path, first_id: int, *, full_text: bool | None, previous: sqlite3.Connection | None = None
) -> tuple[sqlite3.Connection, bool]:
    """Open (creating if missing) the segment at ``path``; returns the writer's connection and whether
    the trigram index is in use. ``full_text=None`` uses it when this SQLite has FTS5 with the trigram
    tokenizer; ``False`` never does (the LIKE fallback, also used to test that path).

    A new segment gets its schema, and ``previous``'s app ids and checkpoints, in one transaction, so a
    reader sees either nothing (and skips it) or a complete segment.
    """
    conn = connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"log segment {path.name} has schema {version}, newer than {SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (one, first_id) VALUES (1, ?)", (first_id,))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if previous is not None:
                _copy_forward(previous, conn)
            in_use = _ensure_full_text(conn, full_text)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return conn, in_use
    except BaseException:
        conn.close()
        raise


def _ensure_full_text(conn: sqlite3.Connection, full_text: bool | None) -> bool:
    if has_full_text(conn):
        return True
    if full_text is False:
        return False
    conn.execute("SAVEPOINT fts")
    try:
        for statement in _FTS_SCHEMA:
            conn.execute(statement)
        for table in ("logs_fts", "fields_fts"):
            for option, value in FTS_MERGE_OPTIONS:
                conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('{option}', {value})")  # noqa: S608
    except sqlite3.OperationalError:  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
        conn.execute("ROLLBACK TO fts")
        conn.execute("RELEASE fts")
        if full_text:
            raise
        return False
    conn.execute("RELEASE fts")
    return True


def is_ready(conn: sqlite3.Connection) -> bool:
    """Whether the segment's schema is committed (a reader may list a file the writer is creating)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None


def has_full_text(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'logs_fts'").fetchone() is not None


def last_id(conn: sqlite3.Connection) -> int:
    """The segment's highest record id (its first id - 1 while empty)."""
    row = conn.execute("SELECT (SELECT max(id) FROM logs), (SELECT first_id FROM meta)").fetchone()
    if row[0] is not None:
        return int(row[0])
    return int(row[1]) - 1 if row[1] is not None else 0


def time_range(conn: sqlite3.Connection) -> tuple[float | None, float | None]:
    row = conn.execute("SELECT min_time, max_time FROM meta").fetchone()
    return (None, None) if row is None else (row[0], row[1])


def _copy_forward(old: sqlite3.Connection, new: sqlite3.Connection) -> None:
    apps = old.execute("SELECT id, address FROM apps").fetchall()
    checkpoints = old.execute("SELECT name, value FROM checkpoints").fetchall()
    new.executemany("INSERT OR IGNORE INTO apps (id, address) VALUES (?, ?)", apps)
    new.executemany("INSERT OR REPLACE INTO checkpoints (name, value) VALUES (?, ?)", checkpoints)
