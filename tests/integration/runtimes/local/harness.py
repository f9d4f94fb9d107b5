"""Test helpers: specs for ``app.py``, a recording supervisor harness and leak checks."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from yunzhou.runtimes.local import InstanceStatus, LocalSupervisor, LogLine, Probe, ProcessSpec, free_port

APP = Path(__file__).with_name("app.py")
Predicate = Callable[[list[InstanceStatus]], bool]


def app_spec(
    instance_id: str,
    mode: str = "serve",
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    **options: object,
) -> ProcessSpec:
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
    base_env.update(env or {})
    return ProcessSpec(
        instance_id=instance_id,
        app="shop/dev/web",
        release=1,
        argv=(sys.executable, "-u", str(APP), mode),
        cwd=cwd,
        env=base_env,
        port=free_port(),
        **options,  # type: ignore[arg-type]
    )


def fast_http(path: str, **options: object) -> Probe:
    return Probe("http", path=path, period=0.1, timeout=1.0, **options)  # type: ignore[arg-type]


def by_id(statuses: list[InstanceStatus], instance_id: str) -> InstanceStatus | None:
    return next((s for s in statuses if s.instance_id == instance_id), None)


def where(instance_id: str, check: Callable[[InstanceStatus], bool]) -> Predicate:
    def predicate(statuses: list[InstanceStatus]) -> bool:
        status = by_id(statuses, instance_id)
        return status is not None and check(status)

    return predicate


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) pid, None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


class Harness:
    """Wraps a supervisor: remembers every pid it reported so teardown can prove none survived."""

    def __init__(self, supervisor: LocalSupervisor) -> None:
        self.supervisor = supervisor
        self.seen: dict[int, int] = {}

    def _observe(self, statuses: list[InstanceStatus]) -> None:
        for status in statuses:
            if status.pid is not None and status.pid not in self.seen:
                start = proc_start_ticks(status.pid)
                if start is not None:
                    self.seen[status.pid] = start

    def wait(self, predicate: Predicate, timeout: float = 10.0) -> list[InstanceStatus]:
        """Wait for ``predicate``; fail with the last statuses when it does not come true in time."""
        last: list[list[InstanceStatus]] = [[]]

        def check(statuses: list[InstanceStatus]) -> bool:
            self._observe(statuses)
            last[0] = statuses
            return predicate(statuses)

        if not self.supervisor.wait_for(check, timeout):
            raise AssertionError(f"condition not met within {timeout}s; statuses: {last[0]}")
        return last[0]

    def survivors(self) -> list[int]:
        return [pid for pid, start in self.seen.items() if proc_start_ticks(pid) == start]


class LogCollector:
    """A log sink that tests can wait on (a condition variable, no sleeps)."""

    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self._cond = threading.Condition()

    def __call__(self, line: LogLine) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[LogLine]], bool], timeout: float = 10.0) -> list[LogLine]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.lines), timeout):
                raise AssertionError(f"log condition not met within {timeout}s; lines: {self.lines}")
            return list(self.lines)
