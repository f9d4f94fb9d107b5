"""Log store at scale: ingest rate and CPU, index size, needle and field-filter latency, vs grep -c.

    .venv/bin/python bench/logs.py [--sizes 1M,10M] [--repeats 20]

For each size a fresh store in a temporary directory takes realistic lines from one producer thread:
40 % JSON lines of an app (level/user_id/msg/order/took_ms) handed over as the supervisor does (parsed),
30 % plain text lines, 30 % router access-log lines turned into records the way the access-log tailer
does it (4 apps, 70 % of the lines in the queried one, times spread over a day). The producer pauses
only when the store's bounded queue is 90 % full, so nothing is dropped. Ingest CPU is what the store
costs: the writer thread's CPU time (from /proc) plus the producer's time inside ``append()``; making
the lines (the supervisor's and the tailer's work, parsing JSON included) is left out and reported
apart. The same lines go to a plain file, and ``grep -c -F -i`` over it is the floor.

Queries are timed as the API runs them (newest 100 matches of the queried app), each repeat with a
different needle or value so no answer comes from a warm cache of the same pages: ``needle`` is an order
id that occurs in one line; ``field_filter`` is ``level=error user_id=N``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from yunzhou.observe import (  # noqa: E402
    LogRecord,
    LogRetention,
    LogStore,
    access_record,
    format_rfc3339,
    parse_filters,
)
from yunzhou.runtimes.local import LogLine  # noqa: E402 - what the supervisor hands the store

APPS = ["shop/prod/orders", "shop/prod/inventory", "shop/dev/orders", "blog/prod/web"]
MAIN = APPS[0]
DAY = 86400.0
CHUNK = 20_000
USERS = 5000
MESSAGES = [
    "charge ok",
    "payment declined by issuer",
    "cache miss for cart",
    "db timeout after 3 retries",
    "user logged in",
    "sent confirmation email",
    "inventory reserved",
    "rate limited by upstream",
]
LEVELS = ["debug"] * 20 + ["info"] * 70 + ["warn"] * 8 + ["error"] * 2


def mix(i: int) -> int:
    return (i * 2654435761) % 2**32  # a bijection on 32 bits: unique per line, looks random


def make_record(i: int, start: float, step: float) -> LogRecord:
    """Line ``i``: JSON (40 %), plain text (30 %) or a router access record (30 %)."""
    h = mix(i)
    app = MAIN if i % 10 < 7 else APPS[1 + i % 3]
    name = app.rsplit("/", 1)[1]
    instance = f"{name}-{h % 5}"
    when = start + i * step
    kind = (i * 7) % 10
    if kind < 4:
        line = json.dumps({
            "level": LEVELS[h % 100], "user_id": h % USERS, "msg": MESSAGES[h % len(MESSAGES)],
            "order": f"ORD-{i:09d}", "took_ms": h % 900,
        })  # fmt: skip
        # as the supervisor hands it over: it parsed the JSON line already (its cost, not the store's)
        return LogRecord.from_captured(LogLine(when, app, instance, 3, "stdout", line, json.loads(line)))
    if kind < 7:
        level = "ERROR" if h % 50 == 0 else "INFO"
        line = (
            f"{level} [worker-{i % 8}] handled GET /api/items/{h % 5000} for user{h % USERS}"
            f" in {h % 300}ms trace={h:08x}{i:08x}"
        )
        return LogRecord(when, app, instance, "stderr" if level == "ERROR" else "stdout", line, release=3)
    status = 503 if h % 50 == 0 else 404 if h % 20 == 0 else 200
    access = json.dumps({
        "time": format_rfc3339(when), "app": app, "backend": instance, "release": 3, "method": "GET",
        "host": f"{name}.prod.shop.localhost", "path": f"/items/{h % 5000}", "status": status,
        "bytes": h % 4096, "duration_ms": round((h % 5000) / 100, 2), "request_id": f"{h:08x}{i:024x}",
    })  # fmt: skip
    record = access_record(access, now=when)
    assert record is not None
    return record


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU time of one thread of this process, from /proc."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest(store: LogStore, total: int, plain: Path) -> dict[str, Any]:
    writer = next(t for t in threading.enumerate() if t.name == "yunzhou-logs-writer")
    assert writer.native_id is not None
    start, step = time.time() - DAY, DAY / total
    capacity = store.stats().capacity
    make_cpu = append_cpu = 0.0
    waits = 0
    writer_before = thread_cpu_seconds(writer.native_id)
    process_before = time.process_time()
    started = time.perf_counter()
    with plain.open("w", encoding="utf-8") as out:
        for first in range(0, total, CHUNK):
            t = time.thread_time()
            records = [make_record(i, start, step) for i in range(first, min(total, first + CHUNK))]
            out.write("".join(record.line + "\n" for record in records))
            make_cpu += time.thread_time() - t
            while store.stats().queued > capacity * 0.9 - CHUNK:
                waits += 1
                time.sleep(0.005)
            t = time.thread_time()
            for record in records:
                store.append(record)
            append_cpu += time.thread_time() - t
    assert store.flush(3600)
    elapsed = time.perf_counter() - started
    writer_cpu = thread_cpu_seconds(writer.native_id) - writer_before
    stats = store.stats()
    assert stats.dropped == 0, stats
    assert stats.written == total, stats
    store_cpu = writer_cpu + append_cpu
    return {
        "ingest_lines_per_s": round(total / elapsed),
        "ingest_cpu_s_per_line": store_cpu / total,
        "ingest_lines_per_s_per_core": round(total / store_cpu),
        "ingest_seconds": round(elapsed, 1),
        "writer_thread_cpu_s": round(writer_cpu, 1),
        "append_calls_cpu_s": round(append_cpu, 2),
        "making_lines_cpu_s (not the store's)": round(make_cpu, 1),
        "process_cpu_s": round(time.process_time() - process_before, 1),
        "producer_waits_for_queue": waits,
        "segments": stats.segments,
    }


def timed(run: Callable[[int], int], repeats: int) -> dict[str, Any]:
    """``run(k)`` for k in range(repeats) (k picks the needle/value); returns p50/p99 ms and found."""
    samples, cpu, found = [], [], []
    for k in range(repeats):
        t, c = time.perf_counter(), time.thread_time()
        found.append(run(k))
        samples.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "cpu_p50_ms": round(statistics.median(cpu), 2),  # this thread's CPU: what a busy machine hides
        "returned_median": statistics.median(found),
    }


def grep_ms(plain: Path, needle: str, runs: int = 3) -> tuple[float, int]:
    samples, count = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(["grep", "-c", "-F", "-i", needle, str(plain)], capture_output=True, text=True)
        samples.append((time.perf_counter() - t) * 1000)
        count = int(done.stdout.strip() or 0)
    return round(statistics.median(samples), 1), count


def main_app_json_lines(total: int, count: int) -> list[int]:
    """Indices of ``count`` JSON lines of the queried app, spread over the whole range."""
    found: list[int] = []
    stride = max(1, total // count)
    for base in range(stride // 2, total, stride):
        i = base
        while i < total and not (i % 10 < 7 and (i * 7) % 10 < 4):
            i += 1
        if i < total:
            found.append(i)
    return found[:count]


def run_size(total: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="yunzhou-bench-logs-") as tmp:
        plain = Path(tmp) / "lines.txt"
        retention = LogRetention(max_age_days=None, max_bytes=None, interval_s=3600)
        with LogStore(Path(tmp) / "logs", retention=retention) as store:
            result: dict[str, Any] = {"lines": total}
            result.update(ingest(store, total, plain))
            stats = store.stats()
            result["index_bytes"] = stats.bytes
            result["bytes_per_line"] = round(stats.bytes / total)
            result["plain_file_bytes"] = plain.stat().st_size
            needles = [f"ORD-{i:09d}" for i in main_app_json_lines(total, repeats)]
            users = [mix(i) % USERS for i in range(repeats)]

            def count(**query: Any) -> int:
                return len(store.page(MAIN, limit=100, **query).items)

            needle = timed(lambda k: count(grep=needles[k]), repeats)
            where = timed(lambda k: count(where=parse_filters([f"level=error user_id={users[k]}"])), repeats)
            result["needle_p50_ms"] = needle["p50_ms"]
            result["needle_cpu_p50_ms"] = needle["cpu_p50_ms"]
            result["field_filter_p50_ms"] = where["p50_ms"]
            result["field_filter_cpu_p50_ms"] = where["cpu_p50_ms"]
            result["grep_needle_ms"], grep_count = grep_ms(plain, needles[0])
            assert grep_count == 1, grep_count
            assert needle["returned_median"] == 1, needle
            now = time.time()
            result["queries"] = {
                "needle (one order id, a different one each repeat)": needle,
                "level=error user_id=N (N differs each repeat)": where,
                "level=error": timed(lambda k: count(where=parse_filters(["level=error"])), repeats),
                "status>=500 (access records)": timed(
                    lambda k: count(where=parse_filters(["status>=500"])), repeats
                ),
                "took_ms>=899 (range, ~0.1 %)": timed(
                    lambda k: count(where=parse_filters(["took_ms>=899"])), repeats
                ),
                "grep timeout (~5 %)": timed(lambda k: count(grep="timeout"), repeats),
                "grep user42 + level=error": timed(
                    lambda k: count(grep=f"user{users[k]}", where=parse_filters(["level=error"])), repeats
                ),
                "absent needle, frequent trigrams (user=user99999)": timed(
                    lambda k: count(grep=f"user{USERS * 20 + k}"), repeats
                ),
                "2-character needle (no trigram: LIKE scan)": timed(lambda k: count(grep="zq"), repeats),
                "1 h window 6 h ago": timed(
                    lambda k: count(since=now - 6 * 3600, until=now - 5 * 3600), repeats
                ),
                "follow: next 1000 after a cursor 10 000 back": timed(
                    lambda k: len(store.page(MAIN, after_id=total - 10_000, limit=1000).items), repeats
                ),
            }
            result["grep_c"] = {
                "needle": grep_ms(plain, needles[0])[0],
                "timeout": grep_ms(plain, "timeout")[0],
                "absent": grep_ms(plain, f"user{USERS * 20}")[0],
            }
        return result


def parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * factor)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,10M", help="comma-separated line counts (1M, 10M, 200k …)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    sizes = [parse_size(size) for size in args.sizes.split(",") if size.strip()]
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    started = time.perf_counter()
    results = {f"{size:,}".replace(",", "_"): run_size(size, args.repeats) for size in sizes}
    print(
        json.dumps(
            {
                "benchmark": "logs",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version,
                    "load_average_before": load_before,
                },
                "sizes": results,
                "seconds": round(time.perf_counter() - started),
                "load_average_after": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
