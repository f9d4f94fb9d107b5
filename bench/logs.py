"""Log store: sustained append rate and --grep latency over a million records.

    .venv/bin/python bench/logs.py [--records 1000000] [--quick]

One producer thread appends realistic records made beforehand (plain lines, JSON lines, access records;
5 instances each of 4 apps, 70 % of them to one app, times spread over the last day) into a fresh store in
a temporary directory, pausing only when the bounded queue is 90 % full, so nothing is dropped and the
rate measured is what the writer sustains end to end (append → committed, trigram index included). It
also reports what one ``append()`` costs the caller.
Then it times queries against the biggest app as the API runs them: newest 100 matching (tail), and the
next page after a cursor (follow), for rare, common, absent and 2-character needles (below 3 characters
the trigram index cannot help: a LIKE scan, the same as the store's fallback without FTS5), and a time
window. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from yunzhou.observe import LogRecord, LogRetention, LogStore  # noqa: E402

APPS = ["shop/prod/orders", "shop/prod/inventory", "shop/dev/orders", "blog/prod/web"]
MAIN = APPS[0]
DAY = 86400.0


def make_record(i: int, now: float, total: int) -> LogRecord:
    app = MAIN if i % 10 < 7 else APPS[1 + i % 3]  # 70 % of all records belong to the main app
    when = now - DAY + DAY * i / total
    instance = f"{app.rsplit('/', 1)[1]}-{i % 5}"
    kind = i % 10
    if kind in (0, 5):
        line = json.dumps({"level": "info", "msg": "charge ok", "order": f"ORD-{i}", "amount": i % 997})
        return LogRecord(when, app, instance, "stdout", line, release=3)
    if kind == 3:
        line = f"GET /items/{i % 5000} 200 {i % 4096}B {i % 50}.{i % 10}ms request_id=r{i:x}"
        return LogRecord(when, app, instance, "access", line, release=3)
    level = "ERROR" if i % 20 == 1 else "INFO"
    line = f"{level} handled request id={i * 2654435761 % 2**32:08x} user=user{i % 1000} took {i % 300}ms"
    return LogRecord(when, app, instance, "stderr" if level == "ERROR" else "stdout", line, release=3)


def populate(store: LogStore, total: int) -> dict[str, Any]:
    now = time.time()
    records = [make_record(i, now, total) for i in range(total)]  # made before the clock starts
    capacity = store.stats().capacity
    high_water = int(capacity * 0.9)
    append_seconds = 0.0
    waits = 0
    started = time.perf_counter()
    for i, record in enumerate(records):
        t = time.perf_counter()
        store.append(record)
        append_seconds += time.perf_counter() - t
        if i % 1000 == 0 and store.stats().queued > high_water:
            waits += 1
            while store.stats().queued > capacity // 2:
                time.sleep(0.005)
    assert store.flush(600)
    elapsed = time.perf_counter() - started
    stats = store.stats()
    return {
        "records": total,
        "seconds": round(elapsed, 2),
        "records_per_s": round(total / elapsed),
        "append_call_us": round(append_seconds / total * 1e6, 2),
        "appends_per_s_caller_side": round(total / append_seconds),
        "producer_waits_for_queue": waits,
        "dropped": stats.dropped,
        "written": stats.written,
    }


def timed(store: LogStore, repeats: int, **query: Any) -> dict[str, Any]:
    samples = []
    found = 0
    for _ in range(repeats):
        t = time.perf_counter()
        page = store.page(MAIN, **query)
        samples.append((time.perf_counter() - t) * 1000)
        found = len(page.items)
    samples.sort()
    return {
        "returned": found,
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
    }


def count_matches(path: Path, needle: str) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT count(*) FROM logs JOIN apps ON apps.id = logs.app_id"
            " WHERE apps.address = ? AND instr(lower(line), lower(?)) > 0",
            (MAIN, needle),
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="100k records, 10 repeats")
    args = parser.parse_args()
    total, repeats = (100_000, 10) if args.quick else (args.records, args.repeats)

    with tempfile.TemporaryDirectory(prefix="yunzhou-bench-logs-") as tmp:
        path = Path(tmp) / "logs.db"
        retention = LogRetention(max_records_per_app=None, max_age_days=None, interval_s=3600)
        with LogStore(path, retention=retention) as store:
            append = populate(store, total)
            main_records = len([i for i in range(total) if i % 10 < 7])
            last = store.page(MAIN, limit=1).next_after_id
            follow_from = max(0, last - 10_000)
            needles = {
                "rare (one order id)": f"ORD-{(total * 3) // 4 // 10 * 10}",
                "selective (one user, ~0.1 %)": "user=user42 ",
                "common (ERROR, ~5 %)": "error",
                "very common (GET, ~14 %)": "GET /items",
                "absent (a trigram that never occurs)": "no such text",
                "absent (every trigram frequent)": "user=user1000 ",
                "2 characters (LIKE scan)": "zq",
            }
            queries: dict[str, Any] = {}
            for label, needle in needles.items():
                queries[label] = {
                    "needle": needle,
                    "matches_in_app": count_matches(path, needle),
                    "tail_newest_100": timed(store, repeats, grep=needle, limit=100),
                    "follow_next_page_after_cursor": timed(
                        store, repeats, grep=needle, after_id=follow_from, limit=1000
                    ),
                }
            now = time.time()
            queries["no grep"] = {"tail_newest_100": timed(store, repeats, limit=100)}
            queries["since 10m (no grep)"] = {
                "tail_newest_100": timed(store, repeats, since=now - 600, limit=100)
            }
            queries["1 h window 6 h ago (no grep)"] = {
                "tail_newest_100": timed(
                    store, repeats, since=now - 6 * 3600, until=now - 5 * 3600, limit=100
                )
            }
            queries["instance filter + grep error"] = {
                "tail_newest_100": timed(store, repeats, grep="error", instance="orders-1", limit=100)
            }
        store_size = path.stat().st_size  # after close: the WAL is checkpointed into the file
        result = {
            "benchmark": "logs",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
            },
            "append": append,
            "store": {
                "records": total,
                "records_in_queried_app": main_records,
                "bytes_on_disk": store_size,
                "bytes_per_record": round(store_size / total),
            },
            "query": queries,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
