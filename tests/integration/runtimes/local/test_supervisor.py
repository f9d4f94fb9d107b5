"""The supervisor against real child processes: start, readiness, liveness, crashes, stop."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.runtimes.local.harness import Harness, app_spec, by_id, fast_http, where
from yunzhou.runtimes.local import InstanceStatus, Probe, ProcessSpec, free_port


def _get(port: int, path: str = "/") -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


def test_three_instances_become_ready_and_answer(harness: Harness, tmp_path: Path) -> None:
    specs = [app_spec(f"web-{n}", cwd=tmp_path) for n in range(3)]
    for spec in specs:
        harness.supervisor.ensure(spec)
        harness.supervisor.ensure(spec)  # idempotent
    statuses = harness.wait(lambda ss: len(ss) == 3 and all(s.ready and s.state == "ready" for s in ss))
    for spec in specs:
        status = by_id(statuses, spec.instance_id)
        assert status is not None
        assert status.pid is not None
        assert status.port == spec.port
        assert status.restarts == 0
        assert status.started_at is not None
        code, body = _get(spec.port)
        assert code == 200
        assert body == f"hello {status.pid}"
    usage = by_id(harness.supervisor.statuses(), "web-0")
    assert usage is not None
    assert usage.memory_bytes > 0
    assert usage.cpu_seconds > 0


def test_killed_instance_is_restarted(harness: Harness, tmp_path: Path) -> None:
    spec = app_spec("web", cwd=tmp_path)
    harness.supervisor.ensure(spec)
    first = by_id(harness.wait(where("web", lambda s: s.ready)), "web")
    assert first is not None
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    again = by_id(harness.wait(where("web", lambda s: s.ready and s.restarts == 1)), "web")
    assert again is not None
    assert again.pid != first.pid
    assert again.last_exit == "signal 9"
    assert _get(spec.port)[0] == 200


def test_crashing_app_backs_off_exponentially_up_to_the_cap(harness: Harness, tmp_path: Path) -> None:
    harness.supervisor.ensure(app_spec("crash", "exit", cwd=tmp_path))
    seen_delays: set[str] = set()

    def capped(status_list: list[InstanceStatus]) -> bool:
        status = by_id(status_list, "crash")
        if status is None or status.state != "crashloop":
            return False
        seen_delays.add(status.reason.split()[1])
        return status.reason.startswith("back-off 0.4s")

    statuses = harness.wait(capped)
    status = by_id(statuses, "crash")
    assert status is not None
    assert status.last_exit == "exit 1"
    assert status.restarts >= 3  # 0.05, 0.1, 0.2 came before the 0.4 cap
    assert status.next_restart_at is not None
    assert not status.ready
    assert "process ended: exit 1" in status.reason
    assert "0.4s" in seen_delays
    assert len(seen_delays) >= 2  # the delay grew while we watched


def test_failing_liveness_restarts_the_instance(harness: Harness, tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    spec = app_spec(
        "live",
        cwd=tmp_path,
        env={"SICK_FILE": str(sick)},
        liveness=fast_http("/healthz", failure_threshold=2),
    )
    harness.supervisor.ensure(spec)
    harness.wait(where("live", lambda s: s.ready))
    sick.write_text("x")
    restarted = by_id(harness.wait(where("live", lambda s: s.restarts >= 1)), "live")
    assert restarted is not None
    sick.unlink()
    healthy = by_id(harness.wait(where("live", lambda s: s.ready and s.state == "ready")), "live")
    assert healthy is not None
    assert healthy.restarts >= 1


def test_liveness_reason_is_recorded(harness: Harness, tmp_path: Path) -> None:
    spec = app_spec(
        "live", cwd=tmp_path, env={"SICK_FILE": str(tmp_path)}, liveness=fast_http("/healthz")
    )  # tmp_path exists: sick from the start
    harness.supervisor.ensure(spec)
    status = by_id(harness.wait(where("live", lambda s: s.state == "crashloop")), "live")
    assert status is not None
    assert "liveness probe failed 3 times: HTTP 500" in status.reason


def test_readiness_gates_ready(harness: Harness, tmp_path: Path) -> None:
    flag = tmp_path / "ready-flag"
    spec = app_spec("gated", cwd=tmp_path, env={"READY_FILE": str(flag)}, readiness=fast_http("/ready"))
    harness.supervisor.ensure(spec)
    # the process serves (/ answers) but /ready says 503: it must stay unready
    harness.wait(where("gated", lambda s: "HTTP 503" in s.reason))
    assert _get(spec.port)[0] == 200
    status = by_id(harness.supervisor.statuses(), "gated")
    assert status is not None
    assert not status.ready
    assert status.state == "starting"
    flag.write_text("ok")
    harness.wait(where("gated", lambda s: s.ready and s.state == "ready"))


def test_stop_sends_sigterm_to_the_app(harness: Harness, tmp_path: Path) -> None:
    seen = tmp_path / "term-seen"
    harness.supervisor.ensure(app_spec("polite", cwd=tmp_path, env={"TERM_FILE": str(seen)}))
    harness.wait(where("polite", lambda s: s.ready))
    harness.supervisor.stop("polite")
    status = by_id(harness.wait(where("polite", lambda s: s.state == "stopped")), "polite")
    assert status is not None
    assert seen.read_text() == "TERM"
    assert status.last_exit == "exit 0"
    assert status.pid is None
    # reported once more as stopped, then forgotten
    assert [s.state for s in harness.supervisor.statuses()] == ["stopped"]
    assert harness.supervisor.statuses() == []


def test_stop_kills_an_app_that_ignores_sigterm_after_grace(harness: Harness, tmp_path: Path) -> None:
    harness.supervisor.ensure(app_spec("stubborn", cwd=tmp_path, env={"IGNORE_TERM": "1"}))
    harness.wait(where("stubborn", lambda s: s.ready))
    began = time.monotonic()
    harness.supervisor.stop("stubborn", grace=0.5)
    status = by_id(harness.supervisor.statuses(), "stubborn")
    assert status is not None
    assert status.state == "terminating"
    status = by_id(harness.wait(where("stubborn", lambda s: s.state == "stopped")), "stubborn")
    assert status is not None
    assert time.monotonic() - began >= 0.5
    assert status.last_exit == "signal 9"


def test_ensure_with_a_new_spec_replaces_the_instance(harness: Harness, tmp_path: Path) -> None:
    first = app_spec("web", cwd=tmp_path)
    harness.supervisor.ensure(first)
    old = by_id(harness.wait(where("web", lambda s: s.ready)), "web")
    assert old is not None
    second = app_spec("web", cwd=tmp_path, env={"VERSION": "2"})
    harness.supervisor.ensure(second)
    new = by_id(harness.wait(where("web", lambda s: s.ready and s.port == second.port)), "web")
    assert new is not None
    assert new.pid != old.pid
    assert new.restarts == 0


def test_exec_readiness_probe(harness: Harness, tmp_path: Path) -> None:
    flag = tmp_path / "exec-ready"
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"
    probe = Probe("exec", argv=(sys.executable, "-c", check), period=0.1, timeout=5.0)
    harness.supervisor.ensure(app_spec("exec", cwd=tmp_path, readiness=probe))
    harness.wait(where("exec", lambda s: "exit 1" in s.reason))
    flag.write_text("ok")
    harness.wait(where("exec", lambda s: s.ready))


def test_a_missing_executable_is_a_crash_with_a_reason(harness: Harness, tmp_path: Path) -> None:
    spec = ProcessSpec("ghost", "shop/dev/ghost", 1, ("/nonexistent/bin/app",), tmp_path, {}, free_port())
    harness.supervisor.ensure(spec)
    status = by_id(harness.wait(where("ghost", lambda s: s.state == "crashloop")), "ghost")
    assert status is not None
    assert status.last_exit == "spawn error"
    assert "No such file or directory" in status.reason
