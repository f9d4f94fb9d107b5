"""Processes never outlive a killed control plane; memory limits end in OOMKilled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtimes.local.harness import Harness, app_spec, by_id, proc_start_ticks, where
from yunzhou.observe.metrics.collect_instances import cgroup_cpu_throttling
from yunzhou.runtimes.local import LocalSupervisor
from yunzhou.testing.polling import wait_until

HOST = Path(__file__).with_name("host.py")
ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    proc = subprocess.Popen(
        [sys.executable, str(HOST), str(tmp_path / "state"), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_orphans_of_a_killed_supervisor_are_cleaned_up(host: subprocess.Popen[str], tmp_path: Path) -> None:
    assert host.stdout is not None
    reported = json.loads(host.stdout.readline())
    pid, grandchild = reported["pid"], reported["grandchild"]
    starts = {p: proc_start_ticks(p) for p in (pid, grandchild)}
    assert None not in starts.values()
    assert list((tmp_path / "state" / "instances").glob("*.json"))  # recorded before we kill the host

    host.send_signal(signal.SIGKILL)
    host.wait()

    # The instance dies with its supervisor (PR_SET_PDEATHSIG); its grandchild does not: that one is an
    # orphan only cleanup_orphans can find (same process group, recorded in the state dir).
    successor = LocalSupervisor(tmp_path / "state")
    killed = successor.cleanup_orphans()
    successor.close()
    assert grandchild in killed
    survivors = [p for p, start in starts.items() if proc_start_ticks(p) == start]
    assert survivors == []
    assert not list((tmp_path / "state" / "instances").glob("*.json"))
    assert LocalSupervisor(tmp_path / "state").cleanup_orphans() == []  # idempotent


def test_cleanup_orphans_leaves_a_live_supervisors_instances_alone(harness: Harness, tmp_path: Path) -> None:
    harness.supervisor.ensure(app_spec("alive", cwd=tmp_path))
    status = by_id(harness.wait(where("alive", lambda s: s.ready)), "alive")
    assert status is not None
    assert harness.supervisor.cleanup_orphans() == []
    assert LocalSupervisor(tmp_path / "state").cleanup_orphans() == []  # same state dir, owner alive
    assert status.pid is not None
    assert proc_start_ticks(status.pid) is not None


def _require_cgroups() -> None:
    usable, why = LocalSupervisor.cgroup_support()
    if usable:
        return
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must be able to use cgroups: {why}")
    pytest.skip(why)


def test_memory_hog_is_oomkilled(harness: Harness, tmp_path: Path) -> None:
    _require_cgroups()
    harness.supervisor.ensure(
        app_spec("hog", "hog", cwd=tmp_path, memory_limit_bytes=64 * 1024 * 1024, cpu_limit_millis=500)
    )
    status = by_id(harness.wait(where("hog", lambda s: s.last_exit == "OOMKilled"), 20), "hog")
    assert status is not None
    assert "cgroups unavailable" not in status.reason
    assert "not applied" not in status.reason  # the CPU limit was written too


def test_cpu_limit_throttles_and_the_metric_sees_it(harness: Harness, tmp_path: Path) -> None:
    _require_cgroups()
    harness.supervisor.ensure(app_spec("spin", "spin", cwd=tmp_path, cpu_limit_millis=100))
    status = by_id(harness.wait(where("spin", lambda s: s.ready)), "spin")
    assert status is not None
    assert status.pid is not None
    pid = status.pid

    def throttled() -> tuple[int, float] | None:
        seen = cgroup_cpu_throttling(pid)
        return seen if seen is not None and seen[0] > 0 and seen[1] > 0 else None

    periods, seconds = wait_until("the spinning instance to be throttled", throttled, timeout=20)
    assert periods > 0
    assert seconds > 0


def test_cgroup_support_explains_itself() -> None:
    usable, why = LocalSupervisor.cgroup_support()
    assert why
    assert usable == (not why.startswith("cgroups unavailable"))


def test_without_cgroups_limited_instances_say_so(tmp_path: Path) -> None:
    supervisor = LocalSupervisor(tmp_path / "state", use_cgroups=False)
    supervisor.start()
    harness = Harness(supervisor)
    try:
        supervisor.ensure(app_spec("limited", cwd=tmp_path, memory_limit_bytes=64 * 1024 * 1024))
        supervisor.ensure(app_spec("free", cwd=tmp_path))
        statuses = harness.wait(lambda ss: len(ss) == 2 and all(s.ready for s in ss))
        limited, free = by_id(statuses, "limited"), by_id(statuses, "free")
        assert limited is not None
        assert free is not None
        assert "cgroups unavailable: disabled by configuration" in limited.reason
        assert "cgroups" not in free.reason
        assert limited.memory_bytes > 0  # measured from /proc instead
    finally:
        supervisor.close()
    assert harness.survivors() == []


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [("true", pytest.fail.Exception), ("1", pytest.fail.Exception), ("YES", pytest.fail.Exception),
     ("", pytest.skip.Exception), ("false", pytest.skip.Exception)],
)  # fmt: skip
def test_without_cgroups_ci_fails_and_elsewhere_skips(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """Any usual spelling of CI (true, 1, yes) turns a missing cgroup controller into a failure."""
    monkeypatch.setattr(LocalSupervisor, "cgroup_support", staticmethod(lambda: (False, "no cgroup v2 here")))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no cgroup v2 here"):
        _require_cgroups()
