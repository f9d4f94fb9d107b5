"""AccessLogTailer against a real file that the test appends to, truncates and rotates."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from yunzhou.observe import AccessLogTailer, LogStore

APP = "shop/dev/orders"


def entry(path: str, *, app: str | None = APP, status: int = 200) -> str:
    return json.dumps(
        {
            "time": "2024-05-01T10:00:00.000Z",
            "app": app,
            "backend": "orders-1",
            "release": 1,
            "method": "GET",
            "host": "orders.dev.shop.localhost",
            "path": path,
            "status": status,
            "bytes": 5,
            "duration_ms": 0.5,
            "request_id": f"req{path}",
        }
    )


def write(path: Path, *lines: str, end: str = "\n") -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + end for line in lines))


def paths(store: LogStore) -> list[object]:
    assert store.flush()
    return [item["fields"]["path"] for item in store.query(APP, limit=1000)]


@pytest.fixture
def access_log(tmp_path: Path) -> Path:
    return tmp_path / "router" / "access.log"


@pytest.fixture
def tailer(access_log: Path, log_store: LogStore) -> Iterator[AccessLogTailer]:
    tailer = AccessLogTailer(access_log, log_store)
    yield tailer
    tailer.stop()


def test_lines_become_access_records_of_their_app(
    access_log: Path, tailer: AccessLogTailer, log_store: LogStore
) -> None:
    assert tailer.poll() == 0  # no file yet
    access_log.parent.mkdir()
    write(access_log, entry("/a"), entry("/b", status=503))
    assert tailer.poll() == 2
    assert log_store.flush()
    first, second = log_store.query(APP)
    assert first["stream"] == "access"
    assert first["instance"] == "orders-1"
    assert first["line"] == "GET /a 200 5B 0.5ms request_id=req/a"
    assert second["fields"]["status"] == 503
    assert [r["line"] for r in log_store.query(APP, grep="503")] == [second["line"]]


def test_a_partial_line_waits_for_its_end(
    access_log: Path, tailer: AccessLogTailer, log_store: LogStore
) -> None:
    access_log.parent.mkdir()
    line = entry("/slow")
    write(access_log, entry("/a"))
    write(access_log, line[:20], end="")
    assert tailer.poll() == 1
    write(access_log, line[20:])
    assert tailer.poll() == 1
    assert paths(log_store) == ["/a", "/slow"]


def test_lines_without_an_app_or_not_json_are_skipped(
    access_log: Path, tailer: AccessLogTailer, log_store: LogStore
) -> None:
    access_log.parent.mkdir()
    write(access_log, entry("/unrouted", app=None), "garbage", "", entry("/ok"))
    assert tailer.poll() == 1
    assert tailer.lines_skipped == 2
    assert paths(log_store) == ["/ok"]


def test_truncation_starts_again_at_the_beginning(
    access_log: Path, tailer: AccessLogTailer, log_store: LogStore
) -> None:
    access_log.parent.mkdir()
    write(access_log, entry("/1"), entry("/2"), entry("/3"))
    assert tailer.poll() == 3
    with open(access_log, "r+", encoding="utf-8") as f:  # copytruncate
        f.truncate(0)
    write(access_log, entry("/4"))
    assert tailer.poll() == 1
    assert paths(log_store) == ["/1", "/2", "/3", "/4"]


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    access_log: Path, tailer: AccessLogTailer, log_store: LogStore
) -> None:
    access_log.parent.mkdir()
    rotated = access_log.with_suffix(".log.1")
    with open(access_log, "a", encoding="utf-8") as router:  # the router's handle follows the renamed file
        router.write(entry("/1") + "\n")
        router.flush()
        assert tailer.poll() == 1
        access_log.rename(rotated)
        router.write(entry("/2") + "\n")  # written after the rename, before the router reopens
    assert tailer.poll() == 1  # not recreated yet: the old file is still read
    write(rotated, entry("/3"))
    write(access_log, entry("/4"))  # the router reopened its log
    assert tailer.poll() == 2  # the rest of the old file, then the new one
    write(rotated, entry("/late"))  # no longer followed
    write(access_log, entry("/5"))
    assert tailer.poll() == 1
    assert paths(log_store) == ["/1", "/2", "/3", "/4", "/5"]


def test_a_new_tailer_resumes_where_the_last_one_stopped(access_log: Path, log_store: LogStore) -> None:
    access_log.parent.mkdir()
    write(access_log, entry("/1"), entry("/2"))
    first = AccessLogTailer(access_log, log_store)
    assert first.poll() == 2
    first.stop()
    assert log_store.flush()
    write(access_log, entry("/3"))
    second = AccessLogTailer(access_log, log_store)
    assert second.poll() == 1
    second.stop()
    assert paths(log_store) == ["/1", "/2", "/3"]


def test_a_checkpoint_of_another_file_is_not_resumed(access_log: Path, log_store: LogStore) -> None:
    access_log.parent.mkdir()
    write(access_log, entry("/1"), entry("/2"))
    first = AccessLogTailer(access_log, log_store)
    assert first.poll() == 2
    first.stop()
    assert log_store.flush()
    os.replace(access_log, access_log.with_suffix(".old"))  # rotated while no server was running
    write(access_log, entry("/3"))
    second = AccessLogTailer(access_log, log_store)
    assert second.poll() == 1
    second.stop()
    assert paths(log_store) == ["/1", "/2", "/3"]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


def test_started_it_follows_the_file_on_its_own(access_log: Path, log_store: LogStore) -> None:
    tailer = AccessLogTailer(access_log, log_store, interval=0.01).start()
    try:
        access_log.parent.mkdir()
        write(access_log, entry("/1"))
        wait_until(lambda: paths(log_store) == ["/1"])
        write(access_log, *(entry(f"/{i}") for i in range(2, 200)))
        wait_until(lambda: len(paths(log_store)) == 199)
    finally:
        tailer.stop()
    assert paths(log_store) == [f"/{i}" for i in range(1, 200)]
