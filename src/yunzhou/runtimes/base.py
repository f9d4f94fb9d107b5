"""Types shared by every runtime driver (``runtimes.local``, ``runtimes.kubernetes``).

Reconcilers read these; drivers produce them. Nothing here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

InstanceState = Literal["starting", "running", "ready", "crashloop", "terminating", "stopped", "failed"]

#: Every value of ``InstanceState``, in lifecycle order.
INSTANCE_STATES: Final[tuple[InstanceState, ...]] = (
    "starting",
    "running",
    "ready",
    "crashloop",
    "terminating",
    "stopped",
    "failed",
)


#: How much of an instance's stderr its status carries (the last lines, at most this many / bytes).
STDERR_TAIL_LINES: Final = 10
STDERR_TAIL_BYTES: Final = 2048


@dataclass(frozen=True)
class ProbeResult:
    """An instance's last readiness or liveness check: ``probe`` (``readiness``/``liveness``), ``kind``
    (``http``/``tcp``/``exec``), ``target`` (``GET /healthz``, ``TCP port 8080``, ``exec ./check``),
    ``ok`` and ``detail`` (``HTTP 503``, ``connection refused``, ``exit 1``). ``at`` is when it ran and
    ``since`` when the current run of the same outcome began (wall-clock seconds since the epoch)."""

    probe: str
    kind: str
    target: str
    ok: bool
    detail: str
    at: float
    since: float

    def line(self) -> str:
        """``readiness GET /healthz → HTTP 503``."""
        return f"{self.probe} {self.target} → {self.detail}"


def stderr_tail(lines: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The last lines that fit ``STDERR_TAIL_LINES`` and ``STDERR_TAIL_BYTES`` (a longer last line is cut)."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-STDERR_TAIL_LINES:]):
        room = STDERR_TAIL_BYTES - size
        if room <= 0:
            break
        encoded = line.encode()
        if len(encoded) > room:
            line = encoded[:room].decode(errors="ignore")
        kept.append(line)
        size += len(line.encode()) + 1
    return tuple(reversed(kept))


@dataclass(frozen=True)
class InstanceStatus:
    """One running copy of an app as the runtime sees it (a process locally, a Pod on Kubernetes).

    ``state``: ``starting`` (spawned, never ready yet), ``running`` (alive, not ready), ``ready``,
    ``crashloop`` (exited; waiting ``next_restart_at`` before the next start — CrashLoopBackOff),
    ``terminating``, ``stopped`` or ``failed`` (cannot be run; ``reason`` says why).
    ``last_exit`` is how the previous process ended: ``"exit 1"``, ``"signal 9"``, ``"OOMKilled"``.
    Times (``started_at``, ``next_restart_at``) are on the driver's clock. ``stderr_tail``: the last
    lines the instance wrote to stderr (its previous run's, after a crash; see ``stderr_tail()``);
    ``host``: the address the instance serves ``port`` on (127.0.0.1 for a host process, a container's
    bridge address; what the router and the probes dial);
    ``last_probe``: its last check that matters (a failing one first), None when none ran or the driver
    cannot see them.
    """

    instance_id: str
    app: str
    release: int
    pid: int | None
    port: int
    state: InstanceState
    ready: bool
    restarts: int
    last_exit: str | None
    reason: str
    cpu_seconds: float
    memory_bytes: int
    started_at: float | None
    next_restart_at: float | None
    stderr_tail: tuple[str, ...] = ()
    last_probe: ProbeResult | None = None
    host: str = "127.0.0.1"


ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    """A named, observed fact with a machine reason and a human message (Kubernetes style)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition: float | None = None


@dataclass(frozen=True)
class ActionResult:
    """What one runtime call did: ``changed`` is False when the call was a no-op (idempotence)."""

    changed: bool
    message: str = ""
    conditions: tuple[Condition, ...] = ()
