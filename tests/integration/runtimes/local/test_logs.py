"""Captured stdout/stderr become LogLine records; JSON lines are parsed into fields."""

from __future__ import annotations

from pathlib import Path

from tests.integration.runtimes.local.harness import Harness, LogCollector, app_spec, where


def test_stdout_and_stderr_lines_reach_the_sink(harness: Harness, logs: LogCollector, tmp_path: Path) -> None:
    spec = app_spec("talker", cwd=tmp_path)
    harness.supervisor.ensure(spec)
    harness.wait(where("talker", lambda s: s.ready))
    lines = logs.wait(lambda ls: len(ls) >= 3)
    by_text = {line.line: line for line in lines}
    out = by_text[f"listening on {spec.port}"]
    assert out.stream == "stdout"
    assert out.fields == {}
    assert (out.app, out.instance_id, out.release) == ("shop/dev/web", "talker", 1)
    assert out.time > 1_600_000_000  # unix time
    assert by_text["a line on stderr"].stream == "stderr"
    structured = next(line for line in lines if line.fields)
    assert structured.stream == "stdout"
    assert structured.fields == {"level": "info", "msg": "started", "port": spec.port}
    assert harness.supervisor.dropped_log_lines == 0


def test_crash_output_is_captured(harness: Harness, logs: LogCollector, tmp_path: Path) -> None:
    harness.supervisor.ensure(app_spec("crash", "exit", cwd=tmp_path))
    lines = logs.wait(lambda ls: any(line.line == "failing on purpose" for line in ls))
    assert {line.stream for line in lines if line.line == "failing on purpose"} == {"stderr"}
