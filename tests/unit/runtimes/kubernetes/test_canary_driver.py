"""The Kubernetes canary step driver's decisions with a fake clock (no cluster): which release is
stable, the step's weight, the step clock starting only once the canary's pods are Ready, commands, and
router-counter thresholds refused before any traffic moves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from yunzhou.runtimes.base import InstanceStatus
from yunzhou.runtimes.kubernetes.canary import CanaryDriver
from yunzhou.runtimes.kubernetes.render_traffic import canary_replicas
from yunzhou.runtimes.protocol import AppIntent, AppObservation, RouteSpec

STEPS = [{"weight": 20, "pause": "1s"}, {"weight": 50, "pause": "1s"}]


def intent(release: int, **rollout: Any) -> AppIntent:
    return AppIntent(
        app_id=1, address="shop/dev/orders", release=release, score={},
        settings={"rollout": {"strategy": "canary", "steps": STEPS, **rollout}}, artifact=None,
        artifact_digest=None, replicas=4, removing=False, routes=(RouteSpec("orders.test"),),
        target="cluster:kwok", namespace="shop-dev",
    )  # fmt: skip


def pod(release: int, ready: bool, n: int = 0) -> InstanceStatus:
    return InstanceStatus(
        instance_id=f"orders-{release}-{n}", app="shop/dev/orders", release=release, pid=None, port=0,
        state="ready" if ready else "starting", ready=ready, restarts=0, last_exit=None, reason="",
        cpu_seconds=0.0, memory_bytes=0, started_at=None, next_restart_at=None,
    )  # fmt: skip


def observation(*pods: InstanceStatus) -> AppObservation:
    return AppObservation(pods, sum(p.ready for p in pods), 0, converged=True, gone=False, actions=0)


def test_steps_start_once_the_canary_is_ready_and_promote_at_the_end() -> None:
    now = [100.0]
    driver = CanaryDriver(lambda: now[0])
    assert driver.plan(intent(1)) is None  # nothing older runs: applied plainly
    driver.applied(intent(1))
    step = driver.plan(intent(2))
    assert step is not None
    assert (step.stable.release, step.canary and step.canary.release, step.weight) == (1, 2, 20)
    obs = driver.observed(intent(2), step, observation(pod(1, True), pod(2, False)))
    assert not obs.converged
    assert obs.waiting_for == "canary step 1/2: 20% to release 2"
    now[0] += 5  # the pause runs only once the canary's pods are Ready
    step = driver.plan(intent(2))
    assert step is not None
    assert step.weight == 20
    driver.observed(intent(2), step, observation(pod(1, True), pod(2, True)))
    now[0] += 1
    step = driver.plan(intent(2))
    assert step is not None
    assert step.weight == 50
    driver.observed(intent(2), step, observation(pod(1, True), pod(2, True)))  # 50 % of 4 wants 2
    now[0] += 1
    step = driver.plan(intent(2))
    assert step is not None
    assert step.weight == 50
    driver.observed(intent(2), step, observation(pod(1, True), pod(2, True), pod(2, True, 1)))
    now[0] += 1
    assert driver.plan(intent(2)) is None  # promoted


def test_commands_and_router_thresholds() -> None:
    driver = CanaryDriver(lambda: 0.0)
    driver.applied(intent(1))
    assert driver.plan(intent(2, command="promote")) is None
    driver.applied(intent(2))
    step = driver.plan(intent(3, command="abort"))
    assert step is not None
    assert (step.stable.release, step.canary, step.weight) == (2, None, 0)
    assert step.failure == "rollout aborted by a user at step 1"
    refused = [{"weight": 10, "analysis": {"window": "1m", "maxP99Ms": 300}}]
    step = driver.plan(intent(4, steps=refused))
    assert step is not None
    assert step.canary is None
    assert step.failure.startswith(
        "canary aborted before any traffic moved: rollout.steps[0].analysis.maxP99Ms"
    )


def blue_green(release: int, **rollout: Any) -> AppIntent:
    base = intent(release)
    return replace(base, settings={"rollout": {"strategy": "blue-green", **rollout}})


def test_blue_green_runs_the_new_release_at_full_size_then_switches_once_it_is_ready() -> None:
    now = [100.0]
    driver = CanaryDriver(lambda: now[0])
    driver.applied(blue_green(1))
    step = driver.plan(blue_green(2))
    assert step is not None
    assert (step.stable.release, step.canary and step.canary.release, step.weight) == (1, 2, 0)
    assert canary_replicas(blue_green(2), 4, step.weight) == 4  # the whole new release, at 0 % of traffic
    assert canary_replicas(intent(2), 4, 20) == 1  # a canary step: its share of the stable size
    three_of_four = observation(pod(1, True), *(pod(2, True, n) for n in range(3)), pod(2, False, 3))
    obs = driver.observed(blue_green(2), step, three_of_four)
    assert obs.waiting_for == "blue-green: release 2 beside release 1, preview only"
    assert not obs.converged
    now[0] += 60  # not every new pod is Ready: no switch however long it takes
    step = driver.plan(blue_green(2))
    assert step is not None
    assert step.weight == 0
    driver.observed(blue_green(2), step, observation(pod(1, True), *(pod(2, True, n) for n in range(4))))
    assert driver.plan(blue_green(2)) is None  # all Ready, no analysis: switched (applied plainly)


def test_blue_green_analysis_query_abort_command_and_router_thresholds() -> None:
    now = [0.0]
    value = [0.0]
    driver = CanaryDriver(lambda: now[0], metric_query=lambda expr: value[0])
    driver.applied(blue_green(1))
    checked = {"window": "30s", "query": "sum(errors)", "maxValue": 1}
    step = driver.plan(blue_green(2, analysis=checked))
    assert step is not None
    driver.observed(blue_green(2, analysis=checked), step, observation(*(pod(2, True, n) for n in range(4))))
    now[0] += 10
    assert driver.plan(blue_green(2, analysis=checked)) is not None  # the window is not over
    value[0] = 5.0
    step = driver.plan(blue_green(2, analysis=checked))
    assert step is not None
    assert step.canary is None  # aborted: the old release alone
    assert step.failure == "blue-green aborted before the switch: query 'sum(errors)' = 5 > maxValue 1"

    driver.applied(blue_green(1))
    step = driver.plan(blue_green(3, command="abort"))
    assert step is not None
    assert step.failure == "rollout aborted by a user before the switch"
    step = driver.plan(blue_green(4, analysis={"maxErrorRate": 0.01}))
    assert step is not None
    assert step.failure.startswith(
        "blue-green aborted before any traffic moved: rollout.analysis.maxErrorRate needs the local router's"
    )
