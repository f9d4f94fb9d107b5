"""A restart of chosen instances on the real control plane (kwok nodes make pods Ready): the intent names
one pod of two; the runtime deletes that pod once, the Deployment's controller starts a fresh one, the
other pod is left alone, and a later pass with the same intent does nothing more."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.integration.k8s.conftest import make_intent
from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.runtimes.protocol import AppIntent, AppObservation
from yunzhou.testing.k8s import binaries_available
from yunzhou.testing.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]


def converged(runtime: KubernetesRuntime, intent: AppIntent) -> AppObservation | None:
    obs = runtime.apply(intent)
    live = [i for i in obs.instances if i.state != "terminating"]
    return obs if obs.converged and len(live) == intent.replicas and all(i.ready for i in live) else None


def test_replace_instances_deletes_only_the_named_pod(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    intent = make_intent(namespace, replicas=2)
    before = wait_until("two Ready pods", lambda: converged(runtime, intent), timeout=120, interval=0.5)
    failing, healthy = sorted(i.instance_id for i in before.instances)

    restart = replace(intent, replace_instances=(failing,))
    first = runtime.apply(restart)
    assert first.actions >= 1
    assert not first.converged  # the deletion is not in the Deployment's status yet

    def replaced() -> list[str] | None:
        obs = converged(runtime, restart)
        ids = sorted(i.instance_id for i in obs.instances) if obs else []
        return ids if obs and failing not in ids else None

    after = wait_until("the named pod replaced by a fresh Ready one", replaced, timeout=120, interval=0.5)
    assert healthy in after
    assert len(after) == 2
    assert runtime.apply(restart).actions == 0  # deleted once, not again on every pass
