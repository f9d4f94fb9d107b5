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


@dataclass(frozen=True)
class InstanceStatus:
    """One running copy of an app as the runtime sees it (a process locally, a Pod on Kubernetes).

    ``state``: ``starting`` (spawned, never ready yet), ``running`` (alive, not ready), ``ready``,
    ``crashloop`` (exited; waiting ``next_restart_at`` before the next start — CrashLoopBackOff),
    ``terminating``, ``stopped`` or ``failed`` (cannot be run; ``reason`` says why).
    ``last_exit`` is how the previous process ended: ``"exit 1"``, ``"signal 9"``, ``"OOMKilled"``.
    Times (``started_at``, ``next_restart_at``) are on the driver's clock.
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
