"""The rolling-update planner, simulated step by step without processes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yunzhou.domain.plan import Desired, Observed, plan_rollout

_ids = itertools.count()


def inst(release: int, ready: bool = True, **kw: bool) -> Observed:
    return Observed(f"i{next(_ids):04d}", release, ready, **kw)


def simulate(desired: Desired, instances: list[Observed], *, new_become_ready: bool = True, steps: int = 100):
    """Apply plans until done; new instances start unready and become ready on the next step."""
    history = []
    for _ in range(steps):
        plan = plan_rollout(desired, instances)
        ready = sum(i.ready for i in instances)
        history.append((len(instances), ready))
        if plan.done:
            return instances, history, True
        instances = [i for i in instances if i.instance_id not in plan.stop]
        instances = [
            Observed(i.instance_id, i.release, True)
            if (new_become_ready and not i.ready and i.release == desired.release)
            else i
            for i in instances
        ]
        instances += [inst(desired.release, ready=False) for _ in range(plan.start)]
    return instances, history, False


def test_fresh_app_starts_all_replicas() -> None:
    plan = plan_rollout(Desired(1, 3, 1, 0), [])
    assert plan.start == 3  # surge budget is replicas + maxSurge
    assert not plan.done


def test_zero_downtime_rolling_update_keeps_replicas_ready() -> None:
    old = [inst(1) for _ in range(3)]
    final, history, done = simulate(Desired(2, 3, 1, 0), old)
    assert done
    assert {i.release for i in final} == {2}
    assert len(final) == 3
    assert all(ready >= 3 for _, ready in history)  # never below replicas - maxUnavailable
    assert all(total <= 4 for total, _ in history)  # never above replicas + maxSurge


def test_max_unavailable_allows_faster_replacement() -> None:
    old = [inst(1) for _ in range(4)]
    _, history, done = simulate(Desired(2, 4, 0, 2), old)
    assert done
    assert all(ready >= 2 for _, ready in history)
    assert all(total <= 4 for total, _ in history)


def test_crashlooping_release_never_takes_down_the_old_ones() -> None:
    old = [inst(1) for _ in range(3)]
    final, _, done = simulate(Desired(2, 3, 1, 0), old, new_become_ready=False, steps=20)
    assert not done
    assert sum(1 for i in final if i.release == 1 and i.ready) == 3
    assert sum(1 for i in final if i.release == 2) == 1  # only the surge instance is tried
    crashing = [Observed(i.instance_id, i.release, i.ready, crashlooping=i.release == 2) for i in final]
    assert "crash-looping" in plan_rollout(Desired(2, 3, 1, 0), crashing).waiting_for


def test_instances_marked_replace_alone_are_replaced_without_losing_readiness() -> None:
    """A restart of chosen instances: only those go, after a fresh one of the same release is ready."""
    keep, failing = inst(1), inst(1)
    marked = [keep, Observed(failing.instance_id, 1, True, replace=True)]
    final, history, done = simulate(Desired(1, 2, 1, 0), marked)
    assert done
    ids = {i.instance_id for i in final}
    assert keep.instance_id in ids
    assert failing.instance_id not in ids
    assert len(final) == 2
    assert all(ready >= 2 for _, ready in history)  # maxUnavailable 0 holds for a restart too
    unready = [keep, Observed(failing.instance_id, 1, False, crashlooping=True, replace=True)]
    assert plan_rollout(Desired(1, 2, 1, 0), unready).stop == (failing.instance_id,)  # serves nothing
    assert plan_rollout(Desired(1, 2, 1, 0), [keep, failing]).done  # unmarked: nothing to do


def test_scale_down_stops_unready_first() -> None:
    a, b, c = inst(1), inst(1, ready=False), inst(1)
    plan = plan_rollout(Desired(1, 2, 1, 0), [a, b, c])
    assert plan.stop == (b.instance_id,)


def test_scale_to_zero_and_remove() -> None:
    live = [inst(1), inst(1)]
    assert len(plan_rollout(Desired(1, 0, 1, 0), live).stop) == 2
    assert plan_rollout(Desired(1, 0, 1, 0), []).done
    removing = plan_rollout(Desired(1, 2, 1, 0, removing=True), live)
    assert len(removing.stop) == 2
    assert not removing.done


def test_done_is_stable_and_idempotent() -> None:
    live = [inst(3) for _ in range(2)]
    plan = plan_rollout(Desired(3, 2, 1, 0), live)
    assert plan.done
    assert plan.idle
    assert plan_rollout(Desired(3, 2, 1, 0), live) == plan


def test_terminating_instances_are_waited_for() -> None:
    live = [inst(2), inst(2), inst(1, terminating=True)]
    plan = plan_rollout(Desired(2, 2, 1, 0), live)
    assert plan.idle
    assert not plan.done
    assert plan.waiting_for == "waiting for stopped instances to exit"


@settings(max_examples=300, deadline=None)
@given(
    old=st.integers(0, 8),
    replicas=st.integers(0, 8),
    surge=st.integers(0, 4),
    unavailable=st.integers(0, 4),
)
def test_bounds_hold_for_any_rollout(old: int, replicas: int, surge: int, unavailable: int) -> None:
    if surge == 0 and unavailable == 0:
        surge = 1
    start = [inst(1) for _ in range(old)]
    final, history, done = simulate(Desired(2, replicas, surge, unavailable), start)
    assert done
    assert len(final) == replicas
    floor = min(old, max(replicas - unavailable, 0))
    ceiling = max(old, replicas + surge)
    for total, ready in history[1:]:
        assert total <= ceiling
        assert ready >= floor


@pytest.mark.parametrize("replicas", [1, 3])
def test_rollback_is_just_another_rollout(replicas: int) -> None:
    v2 = [inst(2) for _ in range(replicas)]
    final, _, done = simulate(Desired(3, replicas, 1, 0), v2)
    assert done
    assert {i.release for i in final} == {3}
