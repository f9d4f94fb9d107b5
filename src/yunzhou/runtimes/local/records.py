"""Instance records in the state dir: enough to find and kill survivors after the supervisor dies."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import procfs
from .cgroups import remove_group_dirs


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    pid: int
    pgid: int
    start_ticks: int
    supervisor_pid: int
    supervisor_start_ticks: int
    cgroups: tuple[str, ...] = ()


class RecordStore:
    """One JSON file per live process under ``<state_dir>/instances/``, written atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "instances"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, instance_id: str) -> Path:
        return self.dir / (instance_id.encode().hex() + ".json")

    def write(self, record: InstanceRecord) -> None:
        data = json.dumps(asdict(record)).encode()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path(record.instance_id))
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def remove(self, instance_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(instance_id).unlink()

    def load(self) -> list[tuple[Path, InstanceRecord]]:
        records = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                data["cgroups"] = tuple(data.get("cgroups", ()))
                records.append((path, InstanceRecord(**data)))
            except (OSError, ValueError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()  # a torn or foreign file cannot describe a process we own
        return records


def kill_orphans(store: RecordStore) -> list[int]:
    """SIGKILL the process groups recorded by supervisors that are no longer alive; return the pids killed.

    A pid is only killed when /proc shows the same start time as recorded (pid reuse cannot hit a
    stranger). Group members that outlived their leader are found by pgid, started no earlier than it;
    processes left in the recorded cgroups are killed too.
    """
    killed: list[int] = []
    for path, rec in store.load():
        if procfs.is_same_process(rec.supervisor_pid, rec.supervisor_start_ticks):
            continue  # its supervisor is alive (maybe us): these are live instances, not orphans
        members = procfs.group_members(rec.pgid)
        leaders = [m for m in members if m.pid == rec.pgid]
        # a live leader with another start time means the pgid was reused by a stranger's new group
        ours = not leaders or leaders[0].start_ticks == rec.start_ticks
        victims = {m.pid for m in members} if ours else set()
        for cgroup_dir in rec.cgroups:
            with contextlib.suppress(OSError, ValueError):
                victims.update(int(x) for x in Path(cgroup_dir, "cgroup.procs").read_text().split())
        killed.extend(_kill_and_wait(victims))
        if _remove_groups([Path(d) for d in rec.cgroups]):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # otherwise kept, so the next cleanup retries the groups
    return killed


def _remove_groups(dirs: list[Path], attempts: int = 50) -> bool:
    for _ in range(attempts):  # dead members leave the group asynchronously
        if remove_group_dirs(dirs):
            return True
        time.sleep(0.02)
    return False


def _kill_and_wait(pids: set[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL through pidfds (immune to pid reuse once opened) and wait until each has exited."""
    fds: dict[int, int] = {}
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            fds[pid] = os.pidfd_open(pid)
    killed = []
    try:
        for pid, fd in fds.items():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed.append(pid)
        poller = select.poll()
        for fd in fds.values():
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        pending = set(fds.values())
        while pending and (left := deadline - time.monotonic()) > 0:
            for fd, _event in poller.poll(left * 1000):
                pending.discard(fd)
                poller.unregister(fd)
    finally:
        for fd in fds.values():
            os.close(fd)
    for pid in killed:
        _reap_if_child(pid)
    return killed


def _reap_if_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
