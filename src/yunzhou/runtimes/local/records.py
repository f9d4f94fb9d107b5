"""Instance records in the state dir: enough to find and kill survivors after the supervisor dies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
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
        for pid in sorted(victims):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        for pid in sorted(victims):
            _reap_if_child(pid)
        remove_group_dirs([Path(d) for d in rec.cgroups])
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return killed


def _reap_if_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
