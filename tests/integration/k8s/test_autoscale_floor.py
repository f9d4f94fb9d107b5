"""The scheduled floor under a Kubernetes app's HPA, end to end on the real test control plane: the
autoscale loop (injected clock) over a real database stores the active window's minReplicas as the app's
desired replicas (one app.scale by system:autoscaler, a `scheduled:<window>` decision); the intent the
reconciler builds from it renders the HPA with that minReplicas, the API server keeps it and the real HPA
controller scales the Deployment up to it; outside the window the floor and the HPA's minReplicas go back
to the policy's min."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler

from tests.integration.k8s.conftest import make_intent, web
from tests.integration.reconcile.test_autoscale_loop import Clock
from yunzhou.cli.clusters import flatten_kubeconfig
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.reconcile.autoscale import AutoscaleLoop
from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.server import cluster_probe
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database
from yunzhou.testing.k8s import K8sTestEnv, binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]

IN_WINDOW = datetime(2027, 1, 4, 8, 30, tzinfo=UTC).timestamp()  # 30 min into the 08:00 UTC window
AFTER = datetime(2027, 1, 4, 10, 0, tzinfo=UTC).timestamp()
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 5,
    "metrics": [{"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}],
    "schedules": [{"name": "morning", "cron": "0 8 * * *", "durationSeconds": 3600, "minReplicas": 3}],
}


@pytest.fixture
def world(
    k8s_env: K8sTestEnv, database: Database, tmp_path: Path, namespace: str
) -> tuple[ControlPlane, Clock]:
    clock = Clock()
    clock.t = IN_WINDOW
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data", clock=clock, cluster_probe=cluster_probe)
    flat, context = flatten_kubeconfig(k8s_env.kubeconfig, None)
    cp.clusters.add(SYSTEM, "kwok", flat, context, None)
    cp.projects.create(SYSTEM, "shop")
    cp.projects.create_environment(SYSTEM, "shop", "dev", "cluster:kwok", namespace)
    cp.apps.deploy(SYSTEM, "shop", "dev", web("orders"), {"autoscaling": AUTOSCALING}, None)
    return cp, clock


def hpa_min_after_apply(cp: ControlPlane, runtime: KubernetesRuntime, kube: Any, namespace: str) -> int:
    """Apply the intent as reconcile/apps.py builds it (replicas = the app's desired replicas); read back."""
    replicas = int(cp.apps.get("shop", "dev", "orders")["replicas"])
    runtime.apply(make_intent(namespace, settings={"autoscaling": AUTOSCALING}, replicas=replicas))
    hpa = kube.get(HorizontalPodAutoscaler, "orders", namespace=namespace)
    return int(hpa.spec.minReplicas)


def test_a_scheduled_window_raises_the_hpas_min_replicas_and_the_hpa_follows(
    world: tuple[ControlPlane, Clock], runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    cp, clock = world
    store = MetricStore.open(None)
    try:
        loop = AutoscaleLoop(cp, QueryEngine(store))
        [decision] = loop.run_once(IN_WINDOW)
        assert (decision["mode"], decision["current"], decision["desired"]) == ("scheduled:morning", 1, 3)
        assert decision["applied"] is True
        assert "morning" in decision["reason"]
        assert loop.run_once(IN_WINDOW + 15)[0].get("applied") is None  # a steady floor records nothing
        assert len(cp.audit.query(SYSTEM, project="shop", action="app.scale")) == 1
        assert hpa_min_after_apply(cp, runtime, kube, namespace) == 3

        # the real HPA controller raises the Deployment to the floor
        deadline = time.monotonic() + 90
        while (kube.get(Deployment, "orders", namespace=namespace).spec.replicas or 0) < 3:
            assert time.monotonic() < deadline, "the HPA did not scale the Deployment to its minReplicas"
            time.sleep(0.2)

        clock.t = AFTER
        [after] = loop.run_once(AFTER)
        assert (after["mode"], after["current"], after["desired"]) == ("reactive", 3, 1)
        assert after["applied"] is True
        assert hpa_min_after_apply(cp, runtime, kube, namespace) == 1
        history = cp.autoscaling.decisions("shop", "dev", "orders")
        assert [(d["mode"], d["desired"]) for d in history] == [("reactive", 1), ("scheduled:morning", 3)]
    finally:
        store.close()
