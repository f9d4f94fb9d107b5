"""What a container is (``ContainerSpec``) and the runc ``config.json`` it becomes (``render_config``, pure).

The rendered config follows the OCI runtime spec 1.0.2 as runc 1.1.5 reads it and is deliberately strict:

- own mount, pid, ipc, uts and network namespaces (network: the attachment's netns path, a fresh empty
  netns with only ``lo`` for ``"none"``; ``"host"`` shares the host's and is meant for tests and tools);
- a read-only root filesystem, a size-limited ``tmpfs`` on ``/tmp`` (nosuid, nodev), and ``/proc``, ``/dev``,
  ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue`` and a read-only ``/sys`` as ``runc spec`` writes them (no
  ``/sys/fs/cgroup``: a container has no business reading the host's cgroup tree);
- runc's masked and read-only ``/proc`` and ``/sys`` paths (plus ``/sys/devices/virtual/powercap``, as
  Docker masks it);
- no capabilities at all (every set empty), ``noNewPrivileges``, one uid/gid with no supplementary groups;
- ``RLIMIT_NOFILE``, a pids limit, a memory limit with swap = memory (no swap), a CPU quota from millicores;
- the default seccomp profile (``seccomp.py``);
- ``/etc/hosts`` and ``/etc/resolv.conf`` bind-mounted read-only from files in the bundle directory, which
  ``write_bundle`` writes next to ``config.json`` (runc resolves relative bind sources against the bundle).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from yunzhou.domain.errors import invalid
from yunzhou.sandbox.seccomp import default_profile

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000  # the kernel refuses quotas under 1 ms
HOSTS_FILE = "hosts"  # in the bundle directory, next to config.json
RESOLV_FILE = "resolv.conf"
CONFIG_FILE = "config.json"
# where a caller binds a static init (e.g. Debian's /usr/bin/tini-static) and starts the app through it:
# pid 1 of a pid namespace ignores every signal it has no handler for, so an app run directly as pid 1
# would only stop at SIGKILL. LayerCache's skeleton layer provides the mount point.
INIT_MOUNT_POINT = "/.yunzhou-init"
# paths inside the container (not the host's temporary directories)
TMP = "/tmp"  # noqa: S108
SHM = "/dev/shm"  # noqa: S108

# ``runc spec`` (1.1.5) defaults, plus powercap (Docker masks it: energy counters are a side channel).
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[^=\0]+$")
_RESERVED_TARGETS = frozenset(
    {"/", "/proc", "/dev", "/dev/pts", SHM, "/dev/mqueue", "/sys", "/etc/hosts", "/etc/resolv.conf"}
)


@dataclass(frozen=True)
class NetworkAttachment:
    """A container's place on the bridge: the netns it joins, its address and its default gateway."""

    netns_path: Path
    ip: str
    gateway: str
    egress: bool = False


@dataclass(frozen=True)
class Mount:
    """An extra mount: a ``bind`` of ``source`` (read-only unless told) or a ``tmpfs`` of ``size`` bytes."""

    target: str
    source: Path | None = None
    kind: Literal["bind", "tmpfs"] = "bind"
    readonly: bool = True
    size: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """One container. ``env`` is the whole environment (``PATH`` is added when missing).

    ``rootfs``: an absolute path (usually the read-only overlay ``LayerCache.mount`` made).
    ``network``: ``"none"`` (own netns, loopback only), ``"host"`` or a ``NetworkAttachment``.
    ``hosts``: name → address lines of ``/etc/hosts`` after the localhost lines; ``resolv_conf`` None →
    the image's own ``/etc/resolv.conf`` stays (an empty one in practice: no DNS).
    ``cgroups_path``: runc's ``cgroupsPath`` (cgroupfs driver): absolute → below each hierarchy's root,
    relative → below the cgroup of the process that runs runc; runc removes the leaf, never its parents.
    """

    id: str
    rootfs: Path
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets: never in a repr
    cwd: str = "/"
    uid: int = 65534
    gid: int = 65534
    mounts: tuple[Mount, ...] = ()
    readonly_root: bool = True
    memory_limit_bytes: int | None = None
    cpu_limit_millis: int | None = None
    cgroups_path: str | None = None
    network: Literal["none", "host"] | NetworkAttachment = "none"
    hostname: str = ""
    hosts: Mapping[str, str] = field(default_factory=dict)
    resolv_conf: str | None = None
    seccomp: bool = True
    pids_limit: int | None = 1024
    nofile: int = 4096
    tmp_size_bytes: int = 256 * 1024 * 1024
    oom_score_adj: int | None = None


def _check(spec: ContainerSpec) -> None:
    """Refuse a spec runc would misread; each error names the field and what is allowed."""
    if not _ID.match(spec.id):
        raise invalid("id", "1-128 letters, digits, '_', '.', '-', starting with a letter or digit")
    if not spec.rootfs.is_absolute():
        raise invalid("rootfs", "must be an absolute path")
    if not spec.args or any("\0" in a for a in spec.args):
        raise invalid("args", "at least one argument, none containing NUL")
    for name, value in spec.env.items():
        if not _ENV_NAME.match(name) or "\0" in value:
            raise invalid(f"env.{name}", "names are non-empty without '=' or NUL; values without NUL")
    if not spec.cwd.startswith("/"):
        raise invalid("cwd", "must be an absolute path inside the container")
    for what, number in (("uid", spec.uid), ("gid", spec.gid)):
        if not 0 <= number < 2**32 - 1:
            raise invalid(what, "must be 0 to 4294967294")
    if spec.hostname and not _HOSTNAME.match(spec.hostname):
        raise invalid("hostname", "a DNS label: 1-63 lowercase letters, digits and '-'")
    if spec.memory_limit_bytes is not None and spec.memory_limit_bytes < 4 * 1024 * 1024:
        raise invalid("memory_limit_bytes", "at least 4 MiB")
    if spec.cpu_limit_millis is not None and spec.cpu_limit_millis < 10:
        raise invalid("cpu_limit_millis", "at least 10 (a hundredth of a CPU)")
    if spec.pids_limit is not None and spec.pids_limit < 1:
        raise invalid("pids_limit", "at least 1")
    if spec.nofile < 16:
        raise invalid("nofile", "at least 16")
    if spec.tmp_size_bytes < 4096:
        raise invalid("tmp_size_bytes", "at least 4096")
    for name, address in spec.hosts.items():
        if not name or any(c.isspace() or c in "#\0" for c in name + address) or not address:
            raise invalid(f"hosts.{name}", "a name and an address without spaces, '#' or NUL")
    if spec.cgroups_path is not None and (
        not spec.cgroups_path.strip("/") or ".." in spec.cgroups_path.split("/") or "\0" in spec.cgroups_path
    ):
        raise invalid("cgroups_path", "a path of one or more cgroup names, without '..'")
    if spec.resolv_conf is not None and "\0" in spec.resolv_conf:
        raise invalid("resolv_conf", "must not contain NUL")
    seen = {TMP}
    for i, m in enumerate(spec.mounts):
        target = os.path.normpath(m.target) if m.target.startswith("/") else ""
        if not target or target != m.target or target in _RESERVED_TARGETS or target in seen:
            raise invalid(
                f"mounts[{i}].target",
                "an absolute, normalised path, used once, and not one of / /tmp /proc /dev /sys"
                " /etc/hosts /etc/resolv.conf",
            )
        seen.add(target)
        if m.kind == "bind" and (m.source is None or not m.source.is_absolute()):
            raise invalid(f"mounts[{i}].source", "a bind mount needs an absolute source path")
        if m.kind == "tmpfs" and (m.size is None or m.size < 4096):
            raise invalid(f"mounts[{i}].size", "a tmpfs needs a size of at least 4096 bytes")
        if m.kind not in ("bind", "tmpfs"):
            raise invalid(f"mounts[{i}].kind", "bind or tmpfs")


def _system_mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": SHM,
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": TMP,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={spec.tmp_size_bytes}"],
        },
        _bind("/etc/hosts", HOSTS_FILE, readonly=True),
    ]
    if spec.resolv_conf is not None:
        mounts.append(_bind("/etc/resolv.conf", RESOLV_FILE, readonly=True))
    return mounts


def _bind(target: str, source: str, *, readonly: bool) -> dict[str, Any]:
    return {
        "destination": target,
        "type": "bind",
        "source": source,
        "options": ["rbind", "ro" if readonly else "rw", "nosuid", "nodev", "rprivate"],
    }


def _user_mount(m: Mount) -> dict[str, Any]:
    if m.kind == "tmpfs":
        return {
            "destination": m.target,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={m.size}"],
        }
    return _bind(m.target, str(m.source), readonly=m.readonly)


def _namespaces(spec: ContainerSpec) -> list[dict[str, str]]:
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if isinstance(spec.network, NetworkAttachment):
        namespaces.append({"type": "network", "path": str(spec.network.netns_path)})
    elif spec.network == "none":
        namespaces.append({"type": "network"})  # fresh: runc brings up lo and nothing else
    return namespaces


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.memory_limit_bytes is not None:
        resources["memory"] = {"limit": spec.memory_limit_bytes, "swap": spec.memory_limit_bytes}
    if spec.cpu_limit_millis is not None:
        quota = max(MIN_CPU_QUOTA_US, spec.cpu_limit_millis * CPU_PERIOD_US // 1000)
        resources["cpu"] = {"quota": quota, "period": CPU_PERIOD_US}
    if spec.pids_limit is not None:
        resources["pids"] = {"limit": spec.pids_limit}
    return resources


def render_config(spec: ContainerSpec) -> dict[str, Any]:
    """The runc ``config.json`` for ``spec`` (pure; raises ``UserError`` naming a wrong field)."""
    _check(spec)
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": []},
        "args": list(spec.args),
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": spec.cwd,
        "capabilities": {name: [] for name in CAPABILITY_SETS},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": spec.nofile, "soft": spec.nofile}],
        "noNewPrivileges": True,
    }
    if spec.oom_score_adj is not None:
        process["oomScoreAdj"] = spec.oom_score_adj
    linux: dict[str, Any] = {
        "resources": _resources(spec),
        "namespaces": _namespaces(spec),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.cgroups_path is not None:
        linux["cgroupsPath"] = spec.cgroups_path
    if spec.seccomp:
        linux["seccomp"] = default_profile()
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(spec.rootfs), "readonly": spec.readonly_root},
        "hostname": spec.hostname or spec.id[:63].lower().strip("-_.") or "sandbox",
        "mounts": _system_mounts(spec) + [_user_mount(m) for m in spec.mounts],
        "linux": linux,
    }


def render_hosts(spec: ContainerSpec) -> str:
    """``/etc/hosts``: localhost, the container's own name (at its address when attached), ``spec.hosts``."""
    hostname = render_config(spec)["hostname"]
    own = spec.network.ip if isinstance(spec.network, NetworkAttachment) else "127.0.1.1"
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{own}\t{hostname}"]
    lines += [f"{address}\t{name}" for name, address in sorted(spec.hosts.items())]
    return "\n".join(lines) + "\n"


def write_bundle(spec: ContainerSpec, bundle_dir: Path) -> Path:
    """Write ``config.json``, ``hosts`` and ``resolv.conf`` into ``bundle_dir`` (created 0700); returns it."""
    config = render_config(spec)
    bundle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = {CONFIG_FILE: json.dumps(config, indent=1), HOSTS_FILE: render_hosts(spec)}
    if spec.resolv_conf is not None:
        files[RESOLV_FILE] = spec.resolv_conf
    for name, text in files.items():
        tmp = bundle_dir / f".{name}.tmp"
        tmp.write_text(text)
        # 0644: bind-mounted files must be readable by the container's (non-root) user
        tmp.chmod(0o600 if name == CONFIG_FILE else 0o644)
        tmp.replace(bundle_dir / name)
    return bundle_dir
