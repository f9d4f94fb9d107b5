"""Reading /proc: process identity (start time), process-group members, CPU and memory use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    pgid: int
    utime_ticks: int
    stime_ticks: int
    start_ticks: int  # since boot; with the pid, identifies a process across pid reuse
    rss_pages: int


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None when the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may itself contain spaces or ")": split after the last one
    rest = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=rest[0],
        pgid=int(rest[2]),
        utime_ticks=int(rest[11]),
        stime_ticks=int(rest[12]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def start_ticks(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_ticks


def is_same_process(pid: int, start: int) -> bool:
    """True when ``pid`` is alive (not a zombie) and is the process that started at ``start`` ticks."""
    stat = read_stat(pid)
    return stat is not None and stat.start_ticks == start and stat.state != "Z"


def group_members(pgid: int) -> list[ProcStat]:
    """Every live process whose process group is ``pgid``."""
    members = []
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None and stat.pgid == pgid and stat.state != "Z":
                members.append(stat)
    return members


def group_usage(pgid: int) -> tuple[float, int]:
    """(CPU seconds, resident bytes) summed over the live members of a process group."""
    cpu = 0.0
    rss = 0
    for stat in group_members(pgid):
        cpu += (stat.utime_ticks + stat.stime_ticks) / _CLK_TCK
        rss += stat.rss_pages * _PAGE
    return cpu, rss
