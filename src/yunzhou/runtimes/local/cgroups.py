"""Memory/CPU limits and accounting with Linux cgroups, v2 (unified) or v1 (memory + cpu hierarchies).

Groups are created below the supervisor's own cgroup (``<own>/yunzhou/<instance>``) so a machine-level
limit on the control plane still covers its apps. Detection says *why* cgroups are unusable when they are.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PARENT_NAME = "yunzhou"
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class _Mount:
    point: Path
    root: str
    fstype: str
    options: frozenset[str]


@dataclass(frozen=True)
class CgroupLayout:
    """Where this supervisor's instance groups go. v2: ``parent``; v1: one parent per hierarchy."""

    version: Literal["v2", "v1"]
    parent: Path | None = None  # v2
    memory_parent: Path | None = None  # v1
    cpu_parent: Path | None = None  # v1, cpu controller (quota)
    cpuacct_parent: Path | None = None  # v1, cpuacct controller (usage); may equal cpu_parent
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        if self.version == "v2":
            text = f"cgroup v2 at {self.parent}"
        else:
            text = f"cgroup v1: memory at {self.memory_parent}, cpu at {self.cpu_parent or 'unavailable'}"
        return "; ".join((text, *self.notes))


def _mounts() -> list[_Mount]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if len(parts) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = Path(parts[4].replace("\\040", " "))
        mounts.append(_Mount(point, parts[3], tail[0], frozenset(tail[2].split(","))))
    return mounts


def _own_paths() -> dict[str, str]:
    """Controller name (or "" for v2) → this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _group_dir(mount: _Mount, own: str) -> Path:
    rel = own
    if mount.root != "/" and (own == mount.root or own.startswith(mount.root + "/")):
        rel = own[len(mount.root) :]
    return mount.point / rel.lstrip("/")


def _try_make_parent(parent: Path) -> None:
    """Create the parent group and prove a child can be created and removed there."""
    parent.mkdir(exist_ok=True)
    probe = parent / f".probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    probe.rmdir()


def _detect_v2(mount: _Mount, own: str) -> CgroupLayout:
    base = _group_dir(mount, own)
    available = (base / "cgroup.controllers").read_text().split()
    if "memory" not in available:
        raise OSError(
            f"cgroup v2 at {base} offers no memory controller (offers: {' '.join(available) or 'none'})"
        )
    wanted = [c for c in ("memory", "cpu") if c in available]
    enabled = (base / "cgroup.subtree_control").read_text().split()
    missing = [c for c in wanted if c not in enabled]
    if missing:
        try:
            (base / "cgroup.subtree_control").write_text(" ".join("+" + c for c in missing))
        except OSError as exc:
            raise OSError(
                f"cgroup v2: cannot enable {', '.join(missing)} below {base} ({exc.strerror}); "
                "run the control plane in a delegated cgroup"
            ) from exc
    parent = base / PARENT_NAME
    _try_make_parent(parent)
    (parent / "cgroup.subtree_control").write_text(" ".join("+" + c for c in wanted))
    notes = () if "cpu" in wanted else ("cpu controller unavailable: CPU limits not applied",)
    return CgroupLayout("v2", parent=parent, notes=notes)


def _detect_v1(mounts: list[_Mount], own: dict[str, str]) -> CgroupLayout:
    def parent_for(controller: str) -> Path | None:
        for mount in mounts:
            if mount.fstype == "cgroup" and controller in mount.options:
                return _group_dir(mount, own.get(controller, "/")) / PARENT_NAME
        return None

    memory = parent_for("memory")
    if memory is None:
        raise OSError("no cgroup v1 memory hierarchy is mounted")
    _try_make_parent(memory)
    notes: list[str] = []
    cpu = parent_for("cpu")
    if cpu is not None:
        try:
            _try_make_parent(cpu)
        except OSError as exc:
            notes.append(f"cpu hierarchy unusable ({exc.strerror}): CPU limits not applied")
            cpu = None
    else:
        notes.append("no cpu hierarchy: CPU limits not applied")
    cpuacct = parent_for("cpuacct")
    if cpuacct is not None and cpuacct != cpu:
        try:
            _try_make_parent(cpuacct)
        except OSError:
            cpuacct = None
    return CgroupLayout(
        "v1", memory_parent=memory, cpu_parent=cpu, cpuacct_parent=cpuacct, notes=tuple(notes)
    )


def _detect() -> tuple[CgroupLayout | None, str]:
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return None, f"cgroups unavailable: cannot read /proc ({exc})"
    problems: list[str] = []
    for mount in mounts:
        if mount.fstype == "cgroup2":
            try:
                layout = _detect_v2(mount, own.get("", "/"))
                return layout, layout.describe()
            except OSError as exc:
                problems.append(
                    str(exc) if not exc.strerror else f"cgroup v2: {exc.strerror}: {exc.filename}"
                )
            break
    if any(m.fstype == "cgroup" for m in mounts):
        try:
            layout = _detect_v1(mounts, own)
            return layout, layout.describe()
        except OSError as exc:
            problems.append(_explain("v1", exc))
    if not mounts:
        problems.append("no cgroup filesystem is mounted")
    return None, "cgroups unavailable: " + "; ".join(problems)


def _explain(version: str, exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"cgroup {version}: {exc.strerror}: {exc.filename}"
    return str(exc)


@functools.cache
def detect() -> tuple[CgroupLayout | None, str]:
    """The usable layout (or None) and a human explanation. Cached: the machine does not change."""
    return _detect()


class InstanceCgroup:
    """The group(s) of one instance. Created with the limits written; ``procs_files`` are the
    ``cgroup.procs`` files a child writes ``0`` to (joining before exec)."""

    def __init__(self, layout: CgroupLayout, name: str, memory_bytes: int | None, cpu_millis: int | None):
        self.layout = layout
        self.name = name
        self.notes: list[str] = []
        self.dirs: list[Path] = []
        self._memory: Path | None = None
        self._cpuacct: Path | None = None
        try:
            self._create(name, memory_bytes, cpu_millis)
        except OSError:
            self.remove()
            raise

    def _mkdir(self, parent: Path, name: str) -> Path:
        path = parent / name
        path.mkdir(exist_ok=True)
        if path not in self.dirs:
            self.dirs.append(path)
        return path

    def _create(self, name: str, memory_bytes: int | None, cpu_millis: int | None) -> None:
        quota = None if cpu_millis is None else max(1000, cpu_millis * _CPU_PERIOD_US // 1000)
        layout = self.layout
        if layout.version == "v2":
            assert layout.parent is not None
            group = self._mkdir(layout.parent, name)
            self._memory = self._cpuacct = group
            if memory_bytes is not None:
                (group / "memory.max").write_text(str(memory_bytes))
                _write_optional(group / "memory.swap.max", "0")
            if quota is not None:
                if (group / "cpu.max").exists():
                    (group / "cpu.max").write_text(f"{quota} {_CPU_PERIOD_US}")
                else:
                    self.notes.append("cpu controller unavailable: CPU limit not applied")
            return
        assert layout.memory_parent is not None
        self._memory = self._mkdir(layout.memory_parent, name)
        if memory_bytes is not None:
            (self._memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            _write_optional(self._memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        if layout.cpu_parent is not None:
            cpu = self._mkdir(layout.cpu_parent, name)
            if quota is not None:
                (cpu / "cpu.cfs_period_us").write_text(str(_CPU_PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))
            if (cpu / "cpuacct.usage").exists():
                self._cpuacct = cpu
        elif quota is not None:
            self.notes.append("no usable cpu hierarchy: CPU limit not applied")
        if self._cpuacct is None and layout.cpuacct_parent is not None:
            self._cpuacct = self._mkdir(layout.cpuacct_parent, name)

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this group so far (-1: no counter)."""
        if self._memory is None:
            return -1
        name = "memory.events" if self.layout.version == "v2" else "memory.oom_control"
        counters = _read_counters(self._memory / name)
        return counters.get("oom_kill", -1)

    def memory_failures(self) -> int:
        """v1 ``memory.failcnt`` (times the limit was hit); v2: ``max`` events."""
        if self._memory is None:
            return 0
        if self.layout.version == "v2":
            return _read_counters(self._memory / "memory.events").get("max", 0)
        return _read_int(self._memory / "memory.failcnt") or 0

    def usage(self) -> tuple[float | None, int | None]:
        """(CPU seconds, memory bytes) of every process in the group, None where unknown."""
        cpu: float | None = None
        memory: int | None = None
        if self._memory is not None:
            name = "memory.current" if self.layout.version == "v2" else "memory.usage_in_bytes"
            memory = _read_int(self._memory / name)
        if self._cpuacct is not None:
            if self.layout.version == "v2":
                usec = _read_counters(self._cpuacct / "cpu.stat").get("usage_usec")
                cpu = None if usec is None else usec / 1e6
            else:
                nsec = _read_int(self._cpuacct / "cpuacct.usage")
                cpu = None if nsec is None else nsec / 1e9
        return cpu, memory

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in procs.read_text().split())
        return sorted(found)

    def remove(self) -> bool:
        """Remove the group(s); False while processes are still leaving (retry later)."""
        left = []
        for path in reversed(self.dirs):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
        self.dirs = list(reversed(left))
        return not left


def remove_group_dirs(dirs: list[Path]) -> bool:
    ok = True
    for path in dirs:
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            ok = False
    return ok


def _write_optional(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):  # e.g. swap accounting disabled: the memory limit still holds
        path.write_text(value)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_counters(path: Path) -> dict[str, int]:
    counters: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                counters[key] = int(value)
    except OSError:
        pass
    return counters
