"""What the supervisor is asked to run (``ProcessSpec``, ``Probe``) and what it emits (``LogLine``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from yunzhou.domain.masking import NO_MASK, SecretMask

LogStream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Probe:
    """A readiness or liveness check.

    ``kind``: ``"http"`` (GET ``path`` on the instance's host:``port``; 2xx/3xx = ok), ``"tcp"`` (connect) or
    ``"exec"`` (run ``argv`` in the instance's cwd and env; exit 0 = ok). ``port`` None → the instance's PORT.
    """

    kind: str
    path: str = "/"
    port: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    argv: tuple[str, ...] = ()
    period: float = 1.0
    timeout: float = 1.0
    failure_threshold: int = 3
    initial_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("http", "tcp", "exec"):
            raise ValueError(f"probe kind must be http, tcp or exec, not {self.kind!r}")
        if self.kind == "exec" and not self.argv:
            raise ValueError("an exec probe needs argv")
        if self.period <= 0 or self.timeout <= 0 or self.failure_threshold < 1 or self.initial_delay < 0:
            raise ValueError("probe period/timeout must be > 0, failure_threshold >= 1, initial_delay >= 0")


@dataclass(frozen=True)
class FileMount:
    """A Score ``files`` entry: written into the container's bundle, bind-mounted read-only at ``target``."""

    target: str
    content: bytes = field(repr=False)  # may hold a secret (a file expanded from one)
    mode: int = 0o444


@dataclass(frozen=True)
class VolumeMount:
    """A Score ``volumes`` entry: the app's data directory ``source`` (its ``sub_path``) at ``target``."""

    target: str
    source: str
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class ContainerPlan:
    """How an instance runs as a container: ``image`` (pinned, ``project/app@sha256:…``), the process's
    working directory inside it, what is mounted, and whether it may reach the outside (``egress``, the
    environment's policy). ``ProcessSpec.argv``/``env`` are the process's."""

    image: str
    cwd: str = "/"
    files: tuple[FileMount, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    egress: bool = True


@dataclass(frozen=True)
class ProcessSpec:
    """One instance: a process started from ``argv`` in ``cwd`` with ``env`` plus ``PORT``.

    ``env`` is the whole environment (nothing is inherited from the supervisor). ``readiness`` None → TCP
    connect to ``port``; ``liveness`` None → no liveness check. Limits apply through cgroups when usable.
    ``user`` set: the process (and its exec probes) runs as that uid with the same gid, no supplementary
    groups and umask 077; ``home`` is then created for it (0700, owned by ``user``), given as ``HOME`` and
    ``TMPDIR``, and removed when the instance stops. ``host`` is the address the instance listens on as
    the router and the probes dial it: 127.0.0.1 for a host process, its bridge address for a container.
    ``container`` set: the instance is a runc container of that plan (``cwd`` is then a host directory the
    process does not see; ``user`` is the container's uid and gid; ``home`` is not used).
    """

    instance_id: str
    app: str
    release: int
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(repr=False)  # may hold secret values: never in a repr or log
    port: int
    host: str = "127.0.0.1"
    readiness: Probe | None = None
    liveness: Probe | None = None
    memory_limit_bytes: int | None = None
    cpu_limit_millis: int | None = None
    grace_seconds: float = 10.0
    user: int | None = None
    home: Path | None = None
    # the release's secret values (and their encodings), masked as *** in every line it logs
    log_mask: SecretMask = field(default=NO_MASK, repr=False)
    container: ContainerPlan | None = None

    def __post_init__(self) -> None:
        if self.container is not None and (self.user is None or self.home is not None):
            raise ValueError("a container runs as the app's own user (set user) and has no host home")
        if (self.user is None) != (self.home is None) and self.container is None:
            raise ValueError("user and home go together")
        if not self.instance_id:
            raise ValueError("instance_id must not be empty")
        if not self.argv:
            raise ValueError("argv must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")

    @property
    def limited(self) -> bool:
        return self.memory_limit_bytes is not None or self.cpu_limit_millis is not None

    def child_env(self) -> dict[str, str]:
        """What the process (and an exec probe) gets: ``env`` + ``PORT`` (+ ``HOME``/``TMPDIR``)."""
        env = {**self.env, "PORT": str(self.port)}
        if self.home is not None:
            env["HOME"] = env["TMPDIR"] = str(self.home)
        return env


@dataclass(frozen=True)
class LogLine:
    """One captured line. ``time`` is unix time; ``fields`` holds the keys of a JSON-object line."""

    time: float
    app: str
    instance_id: str
    release: int
    stream: LogStream
    line: str
    fields: Mapping[str, object] = field(default_factory=dict)
