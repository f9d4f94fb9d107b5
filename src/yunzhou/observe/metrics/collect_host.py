"""Host metrics from /proc and statvfs: CPU time by mode, memory, disk space, network bytes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from yunzhou.observe.metrics.exposition import Sample

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_text: str) -> dict[str, float]:
    """The aggregate ``cpu`` line of /proc/stat, in seconds by mode."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            ticks = line.split()[1:]
            return {mode: int(t) / _CLK_TCK for mode, t in zip(_CPU_MODES, ticks, strict=False)}
    return {}


def memory_bytes(meminfo_text: str) -> dict[str, float]:
    """MemTotal and MemAvailable of /proc/meminfo, in bytes, as kind=total|available."""
    wanted = {"MemTotal": "total", "MemAvailable": "available"}
    out: dict[str, float] = {}
    for line in meminfo_text.splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            out[wanted[key]] = float(rest.split()[0]) * 1024  # the kernel writes kB
    return out


def network_bytes(netdev_text: str) -> dict[str, tuple[float, float]]:
    """/proc/net/dev: device → (received bytes, transmitted bytes)."""
    out: dict[str, tuple[float, float]] = {}
    for line in netdev_text.splitlines()[2:]:
        device, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) >= 9:
            out[device.strip()] = (float(fields[0]), float(fields[8]))
    return out


class HostCollector:
    name = "host"
    types: ClassVar[dict[str, str]] = {
        "yunzhou_host_cpu_seconds_total": "counter",
        "yunzhou_host_memory_bytes": "gauge",
        "yunzhou_host_disk_bytes": "gauge",
        "yunzhou_host_network_bytes_total": "counter",
    }
    help: ClassVar[dict[str, str]] = {
        "yunzhou_host_cpu_seconds_total": "CPU time of the whole host, by mode (/proc/stat).",
        "yunzhou_host_memory_bytes": "Host memory, kind=total|available (/proc/meminfo).",
        "yunzhou_host_disk_bytes": "File system size, kind=total|free (statvfs), by mount point.",
        "yunzhou_host_network_bytes_total": "Bytes by network device and direction=rx|tx (/proc/net/dev).",
    }

    def __init__(self, mountpoints: Sequence[Path] = (Path("/"),), proc: Path = Path("/proc")) -> None:
        self.mountpoints = mountpoints
        self.proc = proc

    def collect(self, now: float) -> Iterable[Sample]:
        samples: list[Sample] = []
        for mode, seconds in cpu_seconds((self.proc / "stat").read_text()).items():
            samples.append(Sample("yunzhou_host_cpu_seconds_total", {"mode": mode}, seconds))
        for kind, value in memory_bytes((self.proc / "meminfo").read_text()).items():
            samples.append(Sample("yunzhou_host_memory_bytes", {"kind": kind}, value))
        seen_devices: set[int] = set()
        for mount in self.mountpoints:
            try:
                st = os.statvfs(mount)
                dev = os.stat(mount).st_dev
            except OSError:
                continue
            if dev in seen_devices:
                continue
            seen_devices.add(dev)
            where = str(mount)
            samples.append(Sample("yunzhou_host_disk_bytes", {"mountpoint": where, "kind": "total"},
                                  float(st.f_blocks * st.f_frsize)))  # fmt: skip
            samples.append(Sample("yunzhou_host_disk_bytes", {"mountpoint": where, "kind": "free"},
                                  float(st.f_bavail * st.f_frsize)))  # fmt: skip
        try:
            netdev = (self.proc / "net" / "dev").read_text()
        except OSError:
            netdev = ""
        for device, (rx, tx) in sorted(network_bytes(netdev).items()):
            samples.append(
                Sample("yunzhou_host_network_bytes_total", {"device": device, "direction": "rx"}, rx)
            )
            samples.append(
                Sample("yunzhou_host_network_bytes_total", {"device": device, "direction": "tx"}, tx)
            )
        return samples
