"""Rollout planning: what to start and stop next, given desired and observed instances. Pure.

It follows the Kubernetes Deployment controller's rolling update: at most ``replicas + maxSurge``
instances exist, at least ``replicas - maxUnavailable`` are ready, old instances go only when new ones
are ready. A release whose instances never become ready therefore never takes the old ones down.
An instance marked ``replace`` (a restart of that instance) counts as old: it is replaced the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: The kind of a rollout that replaces named instances of the desired release (``strategy.instances``).
INSTANCE_RESTART = "restart-instances"
#: The app condition that says why its instances do not serve (key ``diagnosis``: the failing instance's
#: last stderr lines and probe result); written by the app controller, shown by the app's view.
INSTANCE_HEALTH = "InstanceHealth"


@dataclass(frozen=True)
class Observed:
    """One instance as the runtime reports it."""

    instance_id: str
    release: int
    ready: bool
    terminating: bool = False
    crashlooping: bool = False
    replace: bool = False  # asked to be replaced (an instance restart): handled like an old release's


@dataclass(frozen=True)
class Desired:
    release: int
    replicas: int
    max_surge: int
    max_unavailable: int
    removing: bool = False


@dataclass(frozen=True)
class Plan:
    start: int = 0
    stop: tuple[str, ...] = ()
    done: bool = False
    ready_new: int = 0
    ready_total: int = 0
    waiting_for: str = ""
    crashlooping: tuple[str, ...] = field(default_factory=tuple)

    @property
    def idle(self) -> bool:
        return self.start == 0 and not self.stop


def _unready_first(instances: Sequence[Observed]) -> list[Observed]:
    # stop the ones serving nothing first, then the newest (highest id sorts last, so reverse)
    return sorted(instances, key=lambda i: (i.ready, not i.crashlooping, i.instance_id))


def plan_rollout(desired: Desired, observed: Sequence[Observed]) -> Plan:
    live = [i for i in observed if not i.terminating]
    if desired.removing:
        return Plan(stop=tuple(i.instance_id for i in live), done=not observed)

    new = [i for i in live if i.release == desired.release and not i.replace]
    old = [i for i in live if i.release != desired.release or i.replace]
    n = desired.replicas
    surge = max(desired.max_surge, 0)
    unavailable = max(desired.max_unavailable, 0)
    if surge == 0 and unavailable == 0:
        surge = 1
    ready_new = sum(i.ready for i in new)
    ready_old = sum(i.ready for i in old)
    ready_total = ready_new + ready_old
    min_available = max(n - unavailable, 0)
    crashing = tuple(i.instance_id for i in new if i.crashlooping)

    stop: list[str] = []
    # 1. too many of the new release (a scale-down): stop the extras, least useful first
    if len(new) > n:
        extras = _unready_first(new)[: len(new) - n]
        stop += [i.instance_id for i in extras]
        ready_total -= sum(i.ready for i in extras)
        new = [i for i in new if i not in extras]
    # 2. old instances that serve nothing can always go
    for i in old:
        if not i.ready:
            stop.append(i.instance_id)
    old_ready = [i for i in old if i.ready]
    # 3. ready old instances go only while enough stay ready
    removable = max(ready_total - min_available, 0)
    for i in old_ready[:removable]:
        stop.append(i.instance_id)
    remaining_old = len(old_ready) - min(removable, len(old_ready))

    # 4. start new ones within the surge budget (counting what survives this step)
    total_after = len(new) + remaining_old
    budget = max(n + surge - total_after, 0)
    start = max(min(n - len(new), budget), 0)

    done = (
        not old
        and len(new) == n
        and ready_new == n
        and not stop
        and start == 0
        and not observed_terminating(observed)
    )
    waiting = ""
    if not done:
        if crashing:
            waiting = f"{len(crashing)} new instance(s) crash-looping"
        elif ready_new < min(len(new), n):
            waiting = f"waiting for {min(len(new), n) - ready_new} new instance(s) to become ready"
        elif old:
            waiting = f"replacing {len(old)} old instance(s)"
        elif any(i.terminating for i in observed):
            waiting = "waiting for stopped instances to exit"
    return Plan(
        start=start,
        stop=tuple(stop),
        done=done,
        ready_new=ready_new,
        ready_total=ready_new + ready_old,
        waiting_for=waiting,
        crashlooping=crashing,
    )


def observed_terminating(observed: Sequence[Observed]) -> bool:
    return any(i.terminating for i in observed)
