"""Line splitting and the non-blocking log pump."""

from __future__ import annotations

import threading

from yunzhou.domain.masking import SecretMask
from yunzhou.runtimes.local.logs import LineSplitter, LogPump, parse_fields
from yunzhou.runtimes.local.spec import LogLine


def test_splits_chunks_into_lines() -> None:
    splitter = LineSplitter(max_bytes=100)
    assert splitter.feed(b"one\ntw") == [b"one"]
    assert splitter.feed(b"o\nthree\n") == [b"two", b"three"]
    assert splitter.feed(b"tail") == []
    assert splitter.flush() == [b"tail"]


def test_cuts_overlong_lines_and_drops_their_rest() -> None:
    splitter = LineSplitter(max_bytes=4)
    assert splitter.feed(b"abcdefgh") == [b"abcd"]
    assert splitter.feed(b"ijkl\nok\n") == [b"ok"]
    assert splitter.feed(b"123456\n") == [b"1234"]
    assert splitter.truncated == 2


def test_parses_json_objects_only() -> None:
    assert parse_fields('{"a": 1, "b": "x"}') == {"a": 1, "b": "x"}
    assert parse_fields("[1, 2]") == {}
    assert parse_fields("{not json") == {}
    assert parse_fields("plain text") == {}


def test_a_slow_sink_drops_lines_instead_of_blocking() -> None:
    release = threading.Event()
    got: list[LogLine] = []

    def sink(line: LogLine) -> None:
        release.wait()
        got.append(line)

    pump = LogPump(sink, capacity=2)
    for n in range(10):  # returns at once although the sink is stuck
        pump.offer("a/b/c", "i", 1, "stdout", f"line {n}".encode())
    assert pump.dropped >= 7
    release.set()
    pump.close()
    assert 1 <= len(got) <= 3
    assert got[0].line == "line 0"


def test_a_failing_sink_does_not_stop_delivery() -> None:
    got: list[str] = []

    def sink(line: LogLine) -> None:
        if line.line == "boom":
            raise RuntimeError("sink bug")
        got.append(line.line)

    pump = LogPump(sink)
    for text in (b"a", b"boom", b"b"):
        pump.offer("a/b/c", "i", 1, "stderr", text)
    pump.close()
    assert got == ["a", "b"]
    assert pump.sink_errors == 1


def test_the_pump_masks_the_instances_secrets_before_the_sink_sees_the_line() -> None:
    got: list[LogLine] = []
    pump = LogPump(got.append)
    mask = SecretMask.of(["hunter2-hunter2"])
    pump.offer("shop/dev/web", "web-1", 1, "stdout", b'{"msg": "login", "password": "hunter2-hunter2"}', mask)
    pump.offer("shop/dev/web", "web-1", 1, "stderr", b"KEY=hunter2-hunter2", mask)
    pump.close()
    assert [(g.line, dict(g.fields)) for g in got] == [
        ('{"msg": "login", "password": "***"}', {"msg": "login", "password": "***"}),
        ("KEY=***", {}),
    ]
