"""SQL on one segment: batched inserts (records, trigram index, field index, checkpoints) and queries.

Everything per row that SQLite can do in C is done there, one set-based statement per batch: whether a
line is a JSON object, the trigram index entries, the (key, value) entries of its fields.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from yunzhou.observe.logs import fieldindex
from yunzhou.observe.logs.records import split_address
from yunzhou.observe.logs.where import FieldFilter, sql_condition

SMALL_TIME_WINDOW = 100_000  # records in a since/until window that are sorted rather than walked
TRIGRAM = 3  # the trigram index finds substrings of at least this many characters
RARE_TRIGRAM = 5000  # how far a trigram's records are counted when choosing the rarest
RARE_TRIGRAMS_USED = 3
FIELD_DRIVER_CAP = 20_000  # a range filter matching more than this is checked per record, not walked
MAX_INDEXED_TEXT = 128  # longer string values are not put in the field index (still filterable)

Row = tuple[int, int, float, str | None, int | None, str, str, str | int | None]  # id, app_id, time, …
Tokens = tuple[int, str]  # id, the field index tokens of its record

_INSERT_ROW = (
    "INSERT INTO logs (id, app_id, time, instance, release, stream, line, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
FIELDS_JSON = "CASE WHEN l.fields = 1 THEN l.line ELSE l.fields END"
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
# What one bad row can raise; it must not cost the rest of its batch.
ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError)
_COLUMNS = f"l.id, l.time, l.instance, l.release, l.stream, l.line, {FIELDS_JSON}"


class AppIds:
    """address → apps.id, cached; None for what is not an app address. Ids are the same in every
    segment (a new segment starts with a copy of the apps table)."""

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


def insert(
    conn: sqlite3.Connection,
    rows: Sequence[Row],
    tokens: Sequence[Tokens],
    checkpoints: dict[str, str],
    *,
    full_text: bool,
) -> list[Row]:
    """One transaction: the rows, their index entries, the checkpoints that say how far their sources
    were read, and the segment's time range. Returns the rows stored: one the database refuses is left
    out, the others stay."""
    try:
        return _insert(conn, rows, tokens, checkpoints, full_text=full_text, row_by_row=False)
    except ROW_ERRORS:
        return _insert(conn, rows, tokens, checkpoints, full_text=full_text, row_by_row=True)


def _insert(
    conn: sqlite3.Connection,
    rows: Sequence[Row],
    tokens: Sequence[Tokens],
    checkpoints: dict[str, str],
    *,
    full_text: bool,
    row_by_row: bool,
) -> list[Row]:
    stored: list[Row] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rows:
            before = rows[0][0] - 1
            if not row_by_row:
                conn.executemany(_INSERT_ROW, rows)
                stored = list(rows)
            else:
                for row in rows:
                    try:
                        conn.execute(_INSERT_ROW, row)
                        stored.append(row)
                    except ROW_ERRORS:
                        pass
                kept = {row[0] for row in stored}
                tokens = [entry for entry in tokens if entry[0] in kept]
            if stored:
                if full_text:
                    conn.execute(
                        "INSERT INTO logs_fts (rowid, line) SELECT id, line FROM logs WHERE id > ?", (before,)
                    )
                    conn.executemany("INSERT INTO fields_fts (rowid, tokens) VALUES (?, ?)", tokens)
                times = [row[2] for row in stored]
                conn.execute(
                    "UPDATE meta SET min_time = min(coalesce(min_time, ?1), ?1),"
                    " max_time = max(coalesce(max_time, ?2), ?2)",
                    (min(times), max(times)),
                )
        conn.executemany(_INSERT_CHECKPOINT, checkpoints.items())
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return stored


def read_checkpoint(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def app_id(conn: sqlite3.Connection, address: str) -> int | None:
    row = conn.execute("SELECT id FROM apps WHERE address = ?", (address,)).fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class Filters:
    """What a query selects; every filter is a fixed property of a record (so a cursor can skip)."""

    since: float | None = None
    until: float | None = None
    grep: str | None = None
    instance: str | None = None
    stream: str | None = None
    where: tuple[FieldFilter, ...] = ()
    grep_match: str | None = None  # the FTS5 query for grep, chosen once for every segment searched


def select(
    conn: sqlite3.Connection,
    app: tuple[int, str],
    filters: Filters,
    *,
    after_id: int | None,
    limit: int,
    full_text: bool,
) -> list[dict[str, Any]]:
    """Matching records of ``app`` (id, address) in this segment, in id order: the first ``limit``
    after ``after_id``, or without a cursor the newest ``limit``."""
    where = ["l.app_id = ?"]
    params: list[Any] = [app[0]]
    source = "logs AS l"
    order_key = "l.id"
    fields_query = fieldindex.match_expression(list(filters.where)) if full_text else None
    if filters.grep and full_text and len(filters.grep) >= TRIGRAM:
        # Drive the query from the index, in rowid order, so that LIMIT stops it early.
        source = "logs_fts AS f CROSS JOIN logs AS l ON l.id = f.rowid"
        order_key = "f.rowid"
        where.append("logs_fts MATCH ?")
        params.append(filters.grep_match or trigram_query(filters.grep))
    elif fields_query is not None:
        source = "fields_fts AS d CROSS JOIN logs AS l ON l.id = d.rowid"
        order_key = "d.rowid"
        where.append("fields_fts MATCH ?")
        params.append(fields_query)
    if filters.grep:
        where.append("l.line LIKE ? ESCAPE '\\'")
        params.append(like_pattern(filters.grep))
    for check in filters.where:  # the index only narrows: every filter is checked on the record itself
        condition, values = sql_condition(f"json_extract({FIELDS_JSON}, '{json_path(check.key)}')", check)
        where.append(condition)
        params += values
    time_column = "+l.time"  # unary plus: walk the app's records in id order, so that LIMIT stops early
    if source == "logs AS l" and _small_time_window(conn, app[0], filters):
        source, time_column = "logs AS l INDEXED BY logs_by_app_time", "l.time"
    elif source == "logs AS l" and filters.grep:
        # A needle no index can find (shorter than a trigram, or no FTS5): every line of the app gets
        # checked, so read the table itself newest first (one sequential pass that stops at the page
        # limit) instead of a lookup into it per entry of the app's index — half the CPU at 1M lines.
        where[0] = "+l.app_id = ?"
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


def trigram_query(text: str) -> str:
    """An FTS5 query for the records holding every trigram ``text`` is made of — enough of them to cover
    it: every third one and the last (the caller checks the text itself). Every character is literal."""
    starts = sorted({*range(0, len(text) - TRIGRAM + 1, TRIGRAM), len(text) - TRIGRAM})
    return _all_of(text[i : i + TRIGRAM] for i in starts)


def rare_trigram_query(conn: sqlite3.Connection, text: str) -> str:
    """Like ``trigram_query``, but with the needle's rarest trigrams (as counted in ``conn``'s segment).

    Intersecting a trigram most lines hold (``ORD`` or ``000`` of ``ORD-000123456``) costs more than the
    rest of the search, and candidates are checked anyway, so a few rare trigrams are the better filter.
    Counting stops at RARE_TRIGRAM, so a common trigram costs little to rule out.
    """
    grams = list(dict.fromkeys(text[i : i + TRIGRAM].lower() for i in range(len(text) - TRIGRAM + 1)))
    if len(grams) <= RARE_TRIGRAMS_USED:
        return _all_of(grams)
    counted = []
    for gram in grams:
        count = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM logs_fts WHERE logs_fts MATCH ? LIMIT ?)",
            (_all_of([gram]), RARE_TRIGRAM),
        ).fetchone()[0]
        counted.append((count, gram))
    return _all_of(gram for _, gram in sorted(counted)[:RARE_TRIGRAMS_USED])


def _all_of(grams: Iterable[str]) -> str:
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in dict.fromkeys(grams))


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own wildcards escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def json_path(key: str) -> str:
    """The JSON path of a top-level key, taken literally (a dot in it is part of the name); safe to put
    in SQL as a string literal."""
    if "'" in key or '"' in key or "\\" in key:
        raise ValueError(f"a field name cannot contain quotes or backslashes: {key!r}")
    return f'$."{key}"'


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
        "fields": _fields(fields),
    }


def _fields(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
