"""LogStore: batched writes in order, literal case-insensitive grep, filters, cursors, retention, drops."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.observe.conftest import APP, T0, MakeStore, record
from yunzhou.domain.errors import UserError
from yunzhou.observe import LogRecord, LogRetention, LogStore
from yunzhou.observe.logs import sql as logs_sql


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.001)


def fill(store: LogStore, lines: list[str], **kwargs: object) -> None:
    for line in lines:
        store.append(record(line, **kwargs))  # type: ignore[arg-type]
    assert store.flush()


def lines_of(items: list[dict[str, object]]) -> list[object]:
    return [item["line"] for item in items]


def test_appended_records_are_written_in_order_with_increasing_ids(store: LogStore) -> None:
    fill(store, [f"line {i}" for i in range(5000)])
    items = store.query(APP, after_id=0, limit=10_000)
    assert lines_of(items) == [f"line {i}" for i in range(5000)]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    stats = store.stats()
    assert (stats.appended, stats.written, stats.dropped, stats.rejected, stats.queued) == (
        5000,
        5000,
        0,
        0,
        0,
    )


def test_a_record_comes_back_whole(store: LogStore) -> None:
    store.append(
        LogRecord(time=T0 + 0.25, app=APP, instance="orders-7", stream="stderr", line="boom", release=3)
    )
    assert store.flush()
    [item] = store.query(APP)
    assert item == {
        "id": item["id"],
        "time": T0 + 0.25,
        "project": "shop",
        "env": "dev",
        "app": "orders",
        "instance": "orders-7",
        "release": 3,
        "stream": "stderr",
        "line": "boom",
        "fields": {},
    }


def test_without_a_cursor_the_newest_come_back_oldest_first(store: LogStore) -> None:
    fill(store, [f"line {i}" for i in range(10)])
    assert lines_of(store.query(APP, limit=3)) == ["line 7", "line 8", "line 9"]


def test_paging_forward_with_next_after_id_sees_every_record_once(store: LogStore) -> None:
    fill(store, [f"line {i}" for i in range(25)])
    seen: list[object] = []
    cursor = 0
    while True:
        page = store.page(APP, after_id=cursor, limit=10)
        seen += lines_of(page.items)
        assert page.next_after_id >= cursor
        if not page.items:
            break
        cursor = page.next_after_id
    assert seen == [f"line {i}" for i in range(25)]


def test_next_after_id_skips_records_that_did_not_match(store: LogStore) -> None:
    fill(store, ["nothing here"] * 50)
    page = store.page(APP, grep="needle", after_id=0)
    assert page.items == []
    last = store.query(APP, limit=1)[0]["id"]
    assert page.next_after_id == last  # a follower does not scan these again
    fill(store, ["the needle"])
    assert lines_of(store.query(APP, grep="needle", after_id=page.next_after_id)) == ["the needle"]


def test_records_of_other_apps_are_not_returned(store: LogStore) -> None:
    fill(store, ["mine"])
    fill(store, ["theirs"], app="shop/dev/inventory")
    fill(store, ["other env"], app="shop/prod/orders")
    assert lines_of(store.query(APP)) == ["mine"]
    assert store.query("shop/dev/unknown") == []


CORPUS = [
    'say "hello" to the world',
    "wildcards * and ** and *.py",
    "ERROR: disk full",
    "cause OR effect",
    "100% done",
    "50 % off",
    "snake_case_name",
    "back\\slash and C:\\path",
    "it's a quote",
    "NEAR(a b) and AND and NOT",
    "caret ^ colon : minus -x plus +y",
    "(parens) {braces} [brackets]",
    "ab",
    "Mixed Case Words",
    "部署成功 deployed ok",
    "",
]
NEEDLES = [
    '"',
    '"hello"',
    "*",
    "**",
    "OR",
    "or",
    "%",
    "0%",
    "_",
    "_case",
    "\\",
    "C:\\",
    "'",
    "NEAR(",
    "AND",
    "NOT",
    "^",
    ":",
    "-x",
    "+y",
    "(parens)",
    "{",
    "[b",
    "mixed case",
    "WORDS",
    "部署",
    "部署成功",
    "e",
    "ab",
    "zzz",
    "a b",
    "full",
    "ERROR: disk full",
]


@pytest.mark.parametrize("needle", NEEDLES)
def test_grep_is_a_literal_case_insensitive_substring(
    make_store: MakeStore, full_text: bool, needle: str
) -> None:
    store = make_store(full_text=full_text)
    assert store.stats().full_text is full_text
    fill(store, CORPUS)
    expected = [line for line in CORPUS if needle.lower() in line.lower()]
    assert lines_of(store.query(APP, grep=needle, limit=100)) == expected
    assert lines_of(store.query(APP, grep=needle, after_id=0, limit=100)) == expected


def test_grep_finds_matches_beyond_many_that_do_not(make_store: MakeStore, full_text: bool) -> None:
    store = make_store(full_text=full_text)
    fill(store, ["needle 1"] + ["hay"] * 3000 + ["NEEDLE 2"] + ["hay"] * 10)
    assert lines_of(store.query(APP, grep="needle")) == ["needle 1", "NEEDLE 2"]
    assert lines_of(store.query(APP, grep="needle", limit=1)) == ["NEEDLE 2"]
    assert lines_of(store.query(APP, grep="needle", after_id=0, limit=1)) == ["needle 1"]


def test_since_is_inclusive_and_until_exclusive(store: LogStore) -> None:
    for i in range(10):
        store.append(record(f"at {i}", time=T0 + i))
    assert store.flush()
    assert lines_of(store.query(APP, since=T0 + 7)) == ["at 7", "at 8", "at 9"]
    assert lines_of(store.query(APP, until=T0 + 2)) == ["at 0", "at 1"]
    assert lines_of(store.query(APP, since=T0 + 3, until=T0 + 5)) == ["at 3", "at 4"]
    assert lines_of(store.query(APP, since=T0 + 3, until=T0 + 9, limit=2)) == ["at 7", "at 8"]
    assert lines_of(store.query(APP, since=T0 + 3, until=T0 + 9, after_id=0, limit=2)) == ["at 3", "at 4"]
    assert store.query(APP, since=T0 + 100) == []


def test_a_time_window_among_many_records_is_found_by_either_plan(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_sql, "SMALL_TIME_WINDOW", 100)  # windows above it walk ids, below use the index
    for i in range(1000):
        store.append(record("x", time=T0 + i))
    assert store.flush()
    assert [r["time"] for r in store.query(APP, since=T0 + 10, until=T0 + 13)] == [T0 + 10, T0 + 11, T0 + 12]
    wide = store.query(APP, since=T0 + 10, until=T0 + 800, limit=2)
    assert [r["time"] for r in wide] == [T0 + 798, T0 + 799]
    assert [r["time"] for r in store.query(APP, since=T0 + 10, after_id=0, limit=1)] == [T0 + 10]


def test_instance_and_stream_filters(store: LogStore) -> None:
    store.append(record("a", instance="orders-1", stream="stdout"))
    store.append(record("b", instance="orders-2", stream="stderr"))
    store.append(record("c", instance="orders-1", stream="stderr"))
    store.append(record("GET / 200", instance="orders-2", stream="access"))
    assert store.flush()
    assert lines_of(store.query(APP, instance="orders-1")) == ["a", "c"]
    assert lines_of(store.query(APP, stream="stderr")) == ["b", "c"]
    assert lines_of(store.query(APP, instance="orders-2", stream="access")) == ["GET / 200"]
    assert lines_of(store.query(APP, instance="orders-1", grep="C")) == ["c"]


def test_json_lines_come_back_with_their_fields(store: LogStore) -> None:
    store.append(record('{"level": "error", "msg": "Boom", "n": 3}'))
    store.append(record("plain", user="alice", count=2))
    store.append(record("[1, 2, 3]"))
    store.append(record("{not json}"))
    store.append(record('{"x": NaN, "y": [Infinity]}'))
    assert store.flush()
    fields = [item["fields"] for item in store.query(APP)]
    assert fields == [
        {"level": "error", "msg": "Boom", "n": 3},
        {"user": "alice", "count": 2},
        {},
        {},
        {"x": "nan", "y": ["inf"]},  # the API sends strict JSON
    ]
    assert lines_of(store.query(APP, grep="boom")) == ['{"level": "error", "msg": "Boom", "n": 3}']


def test_invalid_records_are_rejected_and_counted(store: LogStore) -> None:
    store.append(record("no app", app="orders"))
    store.append(record("bad stream", stream="stdin"))
    store.append(LogRecord(time=math.nan, app=APP, instance=None, stream="stdout", line="no time"))
    store.append(LogRecord(time="soon", app=APP, instance=None, stream="stdout", line="x"))  # type: ignore[arg-type]
    store.append(record("too big a release", release=2**70))  # refused by SQLite itself
    store.append(record("good"))
    assert store.flush()
    assert lines_of(store.query(APP)) == ["good"]
    stats = store.stats()
    assert (stats.written, stats.rejected) == (1, 5)


def test_appends_from_many_threads_all_arrive_in_each_threads_order(store: LogStore) -> None:
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)

    def produce(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            store.append(record(f"{n}:{i}", instance=f"orders-{n}"))

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert store.flush(30)
    items = []
    cursor = 0
    while page := store.query(APP, after_id=cursor, limit=5000):
        items += page
        cursor = page[-1]["id"]
    assert len(items) == threads * per_thread
    for n in range(threads):
        assert lines_of([i for i in items if i["instance"] == f"orders-{n}"]) == [
            f"{n}:{i}" for i in range(per_thread)
        ]
    assert store.stats().dropped == 0


def test_a_full_queue_drops_the_oldest_and_counts_them(make_store: MakeStore) -> None:
    store = make_store(capacity=10)
    fill(store, ["warm-up"])  # creates the app row, so the writer's next step is the insert itself
    blocker = sqlite3.connect(segment_files(store)[-1], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer waits (busy timeout) meanwhile
    try:
        store.append(record("first"))
        wait_until(lambda: store.stats().queued == 0)  # the writer took it and is now waiting for the lock
        started = time.monotonic()
        for i in range(25):
            store.append(record(f"queued {i}"))
        assert time.monotonic() - started < 1.0  # append never waited for the writer
        stats = store.stats()
        assert (stats.queued, stats.dropped) == (10, 15)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.flush()
    assert lines_of(store.query(APP, limit=100)) == ["warm-up", "first"] + [
        f"queued {i}" for i in range(15, 25)
    ]
    stats = store.stats()
    assert (stats.appended, stats.written, stats.dropped) == (27, 12, 15)


class Clock:
    """An injected clock that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DAY = 86400.0


def segment_files(store: LogStore) -> list[Path]:
    return sorted(store.path.glob("seg-*.db"))


def daily(store: LogStore, clock: Clock, days: int, per_day: int = 3) -> None:
    """``days`` days of logging, one segment a day (segment_seconds=DAY): records written at the clock."""
    for day in range(days):
        fill(store, [f"day {day} line {i}" for i in range(per_day)], time=clock.now)
        clock.now += DAY


def test_a_segment_is_sealed_when_old_enough_and_queries_span_segments(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=None, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    daily(store, clock, 4)
    assert len(segment_files(store)) == 4
    assert store.stats().segments == 4
    everything = store.query(APP, after_id=0, limit=100)
    assert lines_of(everything) == [f"day {d} line {i}" for d in range(4) for i in range(3)]
    assert [r["id"] for r in everything] == list(range(1, 13))  # ids continue across segments
    assert lines_of(store.query(APP, limit=4)) == [
        "day 2 line 2",
        "day 3 line 0",
        "day 3 line 1",
        "day 3 line 2",
    ]
    assert lines_of(store.query(APP, grep="LINE 1", limit=2)) == ["day 2 line 1", "day 3 line 1"]
    assert lines_of(store.query(APP, after_id=5, limit=2)) == ["day 1 line 2", "day 2 line 0"]
    assert lines_of(store.query(APP, since=T0 + DAY, until=T0 + 2 * DAY)) == [
        f"day 1 line {i}" for i in range(3)
    ]
    page = store.page(APP, grep="nowhere", after_id=0)
    assert (page.items, page.next_after_id) == ([], 12)


def test_a_short_needle_scans_segments_newest_first_and_skips_other_apps(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=None, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    for day in range(3):
        fill(store, [f"d{day} Qz {i}" for i in range(2)], app="shop/prod/other", time=clock.now)
        fill(store, [f"d{day} qZ {i}" if i % 2 else f"d{day} x_{i}" for i in range(4)], time=clock.now)
        clock.now += DAY
    assert len(segment_files(store)) == 3
    assert lines_of(store.query(APP, grep="QZ", limit=3)) == ["d1 qZ 3", "d2 qZ 1", "d2 qZ 3"]
    assert lines_of(store.query(APP, grep="QZ", after_id=0, limit=2)) == ["d0 qZ 1", "d0 qZ 3"]
    assert lines_of(store.query(APP, grep="_", limit=2)) == ["d2 x_0", "d2 x_2"]  # literal, not LIKE's


def test_new_segments_merge_their_full_text_indexes_lazily(make_store: MakeStore) -> None:
    store = make_store(full_text=True)
    fill(store, ["one line"])
    conn = sqlite3.connect(segment_files(store)[-1])
    try:
        for table in ("logs_fts", "fields_fts"):
            config = dict(conn.execute(f"SELECT k, v FROM {table}_config"))  # noqa: S608 - fixed names
            assert (config["automerge"], config["crisismerge"]) == (16, 32), table
    finally:
        conn.close()


def test_retention_by_age_deletes_whole_segments_past_the_limit(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=2, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    daily(store, clock, 6)  # days 0..5 written; the clock is now at day 6
    before = segment_files(store)
    assert store.enforce_retention() == 4 * 3  # days 0-3: their newest record is over 2 days old
    assert segment_files(store)[:2] == before[4:]  # whole files, the oldest ones
    assert lines_of(store.query(APP, after_id=0, limit=100)) == [
        f"day {d} line {i}" for d in range(4, 6) for i in range(3)
    ]
    assert lines_of(store.query(APP, grep="day 3")) == []
    assert store.stats().retention_deleted == 12


def test_retention_by_size_deletes_the_oldest_segments_until_under_the_bound(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=None, max_bytes=10**9, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    daily(store, clock, 5, per_day=200)
    store.close()
    sizes = [f.stat().st_size for f in segment_files(store)]
    bound = sum(sizes[-2:]) * 2  # room for about four days' segments, not five
    retention = LogRetention(max_age_days=None, max_bytes=bound, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    deleted = store.enforce_retention()
    assert deleted in (200, 400)  # whole days, the oldest first
    assert store.stats().bytes <= bound
    kept = store.query(APP, after_id=0, limit=10_000)
    assert len(kept) == 1000 - deleted
    assert kept[0]["line"] == f"day {deleted // 200} line 0"
    assert kept[-1]["line"] == "day 4 line 199"


def test_a_segment_is_sealed_when_it_reaches_its_size(make_store: MakeStore) -> None:
    retention = LogRetention(max_age_days=None, max_bytes=None, segment_bytes=64 * 1024, interval_s=3600)
    store = make_store(retention=retention)
    for batch in range(20):
        fill(store, [f"batch {batch} line {i} " + "x" * 200 for i in range(100)])
    files = segment_files(store)
    assert len(files) > 3
    assert all(f.stat().st_size < 1024 * 1024 for f in files)
    assert len(store.query(APP, after_id=0, limit=10_000)) == 2000


def test_the_writer_applies_retention_periodically(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=1, max_bytes=None, segment_seconds=DAY, interval_s=0.01)
    store = make_store(retention=retention, clock=clock)
    daily(store, clock, 3, per_day=2)
    wait_until(lambda: store.stats().retention_deleted == 4)
    assert lines_of(store.query(APP)) == ["day 2 line 0", "day 2 line 1"]


def test_ids_are_never_reused_after_everything_was_deleted(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=1, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    fill(store, ["old"], time=T0)
    last = store.page(APP).next_after_id
    clock.now += 3 * DAY
    assert store.enforce_retention() == 1  # the active segment was all old: sealed, then deleted
    assert store.query(APP, after_id=0) == []
    fill(store, ["new"], time=clock.now)
    [item] = store.query(APP, after_id=0)
    assert item["id"] > last
    store.close()
    reopened = make_store(retention=retention, clock=clock)
    fill(reopened, ["after restart"], time=clock.now)
    assert [r["id"] for r in reopened.query(APP, after_id=0)] == [item["id"], item["id"] + 1]


def test_checkpoints_and_app_ids_carry_over_into_new_segments(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=1, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    fill(store, ["orders"])
    fill(store, ["inventory"], app="shop/dev/inventory")
    store.set_checkpoint("access-log", {"offset": 7})
    assert store.flush()
    clock.now += 3 * DAY
    store.enforce_retention()  # every segment with records is gone
    assert store.checkpoint("access-log") == {"offset": 7}
    fill(store, ["inventory again"], app="shop/dev/inventory", time=clock.now)
    assert lines_of(store.query("shop/dev/inventory")) == ["inventory again"]
    assert store.query(APP) == []


def test_a_segment_deleted_under_a_reader_is_skipped(make_store: MakeStore) -> None:
    clock = Clock(T0)
    retention = LogRetention(max_age_days=None, max_bytes=None, segment_seconds=DAY, interval_s=3600)
    store = make_store(retention=retention, clock=clock)
    daily(store, clock, 3, per_day=1)
    assert len(store.query(APP, after_id=0)) == 3  # every segment now has a pooled reader connection
    segment_files(store)[0].unlink()
    assert lines_of(store.query(APP, after_id=0)) == ["day 1 line 0", "day 2 line 0"]
    assert lines_of(store.query(APP, grep="line")) == ["day 1 line 0", "day 2 line 0"]


def test_records_and_checkpoints_survive_a_restart(make_store: MakeStore) -> None:
    first = make_store()
    fill(first, ["before restart"])
    first.set_checkpoint("access-log", {"offset": 42})
    assert first.flush()
    first.close()
    second = make_store()
    assert second.checkpoint("access-log") == {"offset": 42}
    assert second.checkpoint("unknown") is None
    fill(second, ["after restart"])
    assert lines_of(second.query(APP)) == ["before restart", "after restart"]


def test_close_writes_what_is_queued_and_later_appends_are_dropped(make_store: MakeStore) -> None:
    store = make_store()
    for i in range(100):
        store.append(record(f"line {i}"))
    store.close()
    store.append(record("too late"))
    assert store.stats().dropped == 1
    reopened = make_store()
    assert len(reopened.query(APP, limit=1000)) == 100


def test_limit_is_bounded(store: LogStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.query(APP, limit=0)


def test_retention_bounds_come_from_the_environment() -> None:
    assert LogRetention.from_env({}) == LogRetention()
    policy = LogRetention.from_env({"YUNZHOU_LOGS_MAX_AGE": "36h", "YUNZHOU_LOGS_MAX_BYTES": "500MB"})
    assert (policy.max_age_days, policy.max_bytes) == (1.5, 500_000_000)
    assert LogRetention.from_env({"YUNZHOU_LOGS_MAX_BYTES": "2GiB"}).max_bytes == 2 << 30
    unbounded = LogRetention.from_env({"YUNZHOU_LOGS_MAX_AGE": "none", "YUNZHOU_LOGS_MAX_BYTES": "0"})
    assert (unbounded.max_age_days, unbounded.max_bytes) == (None, None)
    for name, value in (("YUNZHOU_LOGS_MAX_AGE", "a week"), ("YUNZHOU_LOGS_MAX_BYTES", "2 parsecs")):
        with pytest.raises(UserError) as caught:
            LogRetention.from_env({name: value})
        assert [p.path for p in caught.value.problems] == [name]
