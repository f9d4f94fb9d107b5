"""The Kubernetes canary step driver on the real API server (kwok makes the pods Ready): repeated
``KubernetesRuntime.apply`` passes with an injected clock move the VirtualService's weights 80/20 → 50/50 →
promotion (``orders-canary`` pruned, ``orders`` runs release 2); an abort mid-way sends 100 % back to
release 1 and prunes the canary; a failing custom query aborts on its own."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment

from tests.integration.k8s.conftest import make_intent
from yunzhou.runtimes.kubernetes.runtime import OPTIONAL_KINDS, KubernetesRuntime
from yunzhou.runtimes.protocol import AppIntent, AppObservation
from yunzhou.testing.k8s import binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]

TRAFFIC = {"timeouts": {"overall": "3s"}}  # a traffic policy: the route object is rendered
STEPS = [{"weight": 20, "pause": "1s"}, {"weight": 50, "pause": "1s"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def release(namespace: str, number: int, rollout: dict[str, Any], replicas: int = 2) -> AppIntent:
    score = make_intent(namespace).score
    containers = {"web": {"image": f"registry.test/web:{number}"}}
    settings = {"rollout": rollout, "traffic": TRAFFIC}
    score = {**score, "containers": containers}
    return make_intent(namespace, release=number, replicas=replicas, settings=settings, score=score)


def weights(kube: Any, namespace: str) -> tuple[tuple[str, int], ...]:
    vs = kube.get(OPTIONAL_KINDS["VirtualService"], "orders", namespace=namespace).to_dict()
    return tuple((r["destination"]["subset"], r.get("weight", 100)) for r in vs["spec"]["http"][-1]["route"])


def subsets(kube: Any, namespace: str) -> dict[str, str]:
    dr = kube.get(OPTIONAL_KINDS["DestinationRule"], "orders", namespace=namespace).to_dict()
    return {s["name"]: s["labels"]["yunzhou.io/release"] for s in dr["spec"]["subsets"]}


def deployments(kube: Any, namespace: str) -> dict[str, str]:
    return {
        d.metadata.name: d.spec.template.metadata.labels["yunzhou.io/release"]
        for d in kube.list(Deployment, namespace=namespace)
    }


def deploy_first(runtime: KubernetesRuntime, namespace: str) -> None:
    v1 = release(namespace, 1, {"strategy": "canary", "steps": STEPS})
    deadline = time.monotonic() + 90
    while not runtime.apply(v1).converged:
        assert time.monotonic() < deadline, "release 1 did not converge"
        time.sleep(0.2)


def test_steps_move_the_weights_then_promote(kube: Any, namespace: str) -> None:
    clock = Clock()
    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock)
    deploy_first(runtime, namespace)
    assert weights(kube, namespace) == (("stable", 100),)
    v2 = release(namespace, 2, {"strategy": "canary", "steps": STEPS})
    seen: list[tuple[tuple[str, int], ...]] = []
    waits: list[str] = []
    obs: AppObservation | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        obs = runtime.apply(v2)
        got = weights(kube, namespace)
        if not seen or seen[-1] != got:
            seen.append(got)
        if obs.waiting_for and (not waits or waits[-1] != obs.waiting_for):
            waits.append(obs.waiting_for)
        if obs.converged:
            break
        if "canary" in obs.waiting_for:
            assert not obs.converged
            assert not obs.failure
        clock.now += 0.6
        time.sleep(0.1)
    else:
        raise AssertionError(f"release 2 was not promoted: {seen} {waits}")
    assert seen == [
        (("stable", 80), ("canary", 20)),
        (("stable", 50), ("canary", 50)),
        (("stable", 100),),
    ]
    assert waits[:2] == ["canary step 1/2: 20% to release 2", "canary step 2/2: 50% to release 2"]
    assert deployments(kube, namespace) == {"orders": "2"}
    assert subsets(kube, namespace) == {"stable": "2"}
    assert obs is not None
    assert obs.ready_current == 2


def test_abort_mid_way_restores_the_stable_release(kube: Any, namespace: str) -> None:
    clock = Clock()
    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock)
    deploy_first(runtime, namespace)
    v2 = release(namespace, 2, {"strategy": "canary", "steps": STEPS})
    deadline = time.monotonic() + 90
    while weights(kube, namespace) != (("stable", 50), ("canary", 50)):
        assert time.monotonic() < deadline, "the canary did not reach step 2"
        runtime.apply(v2)
        clock.now += 0.6
        time.sleep(0.1)
    assert deployments(kube, namespace) == {"orders": "1", "orders-canary": "2"}
    aborting = release(namespace, 2, {"strategy": "canary", "steps": STEPS, "command": "abort"})
    obs = runtime.apply(aborting)
    assert obs.failure == "rollout aborted by a user at step 2"
    assert not obs.converged
    assert weights(kube, namespace) == (("stable", 100),)
    assert subsets(kube, namespace) == {"stable": "1"}
    assert deployments(kube, namespace) == {"orders": "1"}
    clock.now += 60  # later passes keep reporting the failure and do not restart the canary
    again = runtime.apply(aborting)
    assert again.failure == obs.failure
    assert not again.converged
    assert deployments(kube, namespace) == {"orders": "1"}


def test_a_failing_query_aborts_and_router_thresholds_are_refused(kube: Any, namespace: str) -> None:
    clock = Clock()
    asked: list[str] = []

    def query(expr: str) -> float | None:
        asked.append(expr)
        return 0.3

    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock, metric_query=query)
    deploy_first(runtime, namespace)
    expr = 'sum(rate(istio_requests_total{destination_version="2",response_code=~"5.."}[1m]))'
    analysed = [{"weight": 30, "analysis": {"window": "1m", "query": expr, "maxValue": 0.05}}]
    v2 = release(namespace, 2, {"strategy": "canary", "steps": analysed})
    deadline = time.monotonic() + 90
    while not (obs := runtime.apply(v2)).failure:
        assert time.monotonic() < deadline, "the failing query did not abort the canary"
        clock.now += 0.6
        time.sleep(0.1)
    assert asked == [expr]
    assert obs.failure == f"canary aborted at step 1 (30%): query {expr!r} = 0.3 > maxValue 0.05"
    runtime.apply(v2)  # the pass after the verdict applies the stable release alone
    assert weights(kube, namespace) == (("stable", 100),)
    assert deployments(kube, namespace) == {"orders": "1"}

    # error-rate thresholds need the local router's counters: refused before any traffic moves
    v3 = release(namespace, 3, {"strategy": "canary", "steps": [
        {"weight": 10, "analysis": {"maxErrorRate": 0.01}}]})  # fmt: skip
    obs = runtime.apply(v3)
    assert obs.failure.startswith("canary aborted before any traffic moved: rollout.steps[0].analysis.")
    assert "maxErrorRate needs the local router's per-release counters" in obs.failure
    assert deployments(kube, namespace) == {"orders": "1"}
    assert weights(kube, namespace) == (("stable", 100),)


def test_blue_green_previews_the_new_release_at_full_size_then_switches_at_once(
    kube: Any, namespace: str
) -> None:
    clock = Clock()
    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock)
    rollout = {"strategy": "blue-green"}
    v1 = release(namespace, 1, rollout)
    deadline = time.monotonic() + 90
    while not runtime.apply(v1).converged:
        assert time.monotonic() < deadline, "release 1 did not converge"
        time.sleep(0.2)
    v2 = release(namespace, 2, rollout)
    obs = runtime.apply(v2)
    assert obs.waiting_for == "blue-green: release 2 beside release 1, preview only"
    assert not obs.converged
    # the new release at full size beside the old one; all traffic still to release 1, the preview header
    # (x-canary: always) to release 2
    replicas = {d.metadata.name: d.spec.replicas for d in kube.list(Deployment, namespace=namespace)}
    assert replicas == {"orders": 2, "orders-canary": 2}
    assert weights(kube, namespace) == (("stable", 100), ("canary", 0))
    assert subsets(kube, namespace) == {"stable": "1", "canary": "2"}
    vs = kube.get(OPTIONAL_KINDS["VirtualService"], "orders", namespace=namespace).to_dict()
    preview = vs["spec"]["http"][0]
    assert preview["match"] == [{"headers": {"x-canary": {"exact": "always"}}}]
    assert [(r["destination"]["subset"], r["weight"]) for r in preview["route"]] == [("canary", 100)]
    seen = [weights(kube, namespace)]
    deadline = time.monotonic() + 90
    while not (obs := runtime.apply(v2)).converged:  # kwok makes the new pods Ready: then the switch
        assert time.monotonic() < deadline, f"release 2 was not switched to: {obs.waiting_for}"
        if seen[-1] != (got := weights(kube, namespace)):
            seen.append(got)
        assert not obs.failure
        clock.now += 0.5
        time.sleep(0.1)
    seen.append(weights(kube, namespace))
    assert seen[0] == (("stable", 100), ("canary", 0))
    assert seen[-1] == (("stable", 100),)
    assert (("stable", 50), ("canary", 50)) not in seen  # no step between: all at once
    assert deployments(kube, namespace) == {"orders": "2"}
    assert subsets(kube, namespace) == {"stable": "2"}
    assert obs.ready_current == 2


def test_a_restarted_control_plane_resumes_the_canary_against_the_release_it_replaces(
    kube: Any, namespace: str
) -> None:
    clock = Clock()
    before = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock)
    deploy_first(before, namespace)
    v1 = release(namespace, 1, {"strategy": "canary", "steps": STEPS})
    v2 = release(namespace, 2, {"strategy": "canary", "steps": STEPS})
    before.apply(v2)
    assert weights(kube, namespace) == (("stable", 80), ("canary", 20))
    # a new process knows nothing of release 1 but what the store says: the rollout replaces it
    after = KubernetesRuntime(lambda cluster: (kube, "apps.test"), clock=clock)
    obs = after.apply(replace(v2, previous=v1))
    assert obs.waiting_for == "canary step 1/2: 20% to release 2"
    assert not obs.converged
    assert weights(kube, namespace) == (("stable", 80), ("canary", 20))
    assert deployments(kube, namespace) == {"orders": "1", "orders-canary": "2"}
