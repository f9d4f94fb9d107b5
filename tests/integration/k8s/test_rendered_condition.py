"""What a cluster cannot serve is said on the app, not only on the workload's annotation: a real server
process deploys to a control plane WITHOUT the prometheus-operator/Istio/KEDA CRDs, and the app gets the
condition Rendered=False/MissingAPIs listing each kind left out and why — in the API and `yunzhou status`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment

from tests.integration.k8s.conftest import lightkube_client, web
from tests.integration.k8s.test_node_autoscaling_wired import until
from yunzhou.cli.clusters import flatten_kubeconfig
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.k8s import K8sTestEnv, binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]

SETTINGS = {
    "metrics": {"port": "http", "path": "/metrics"},
    "autoscaling": {
        "minReplicas": 0,
        "maxReplicas": 3,
        "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 10}}],
        "scaleToZero": {"enabled": True, "idleSeconds": 120},
    },
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


def test_objects_the_cluster_cannot_serve_are_an_app_condition(
    bare_k8s_env: K8sTestEnv, server: ControlPlaneProcess
) -> None:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    with YunzhouClient(server.url, server.admin_token) as client:
        flat, context = flatten_kubeconfig(bare_k8s_env.kubeconfig, None)
        client.add_cluster("bare", flat, context, None)
        client.create_project("shop")
        client.create_environment("shop", "dev", target="cluster:bare", namespace=namespace)
        # by digest: a server refuses a tag it cannot resolve (a release never refers to a moving tag)
        client.deploy("shop", "dev", web("orders", image="registry.test/web@sha256:" + "1" * 64), SETTINGS)

        def rendered() -> dict[str, Any] | None:
            conditions = client.get_app("shop", "dev", "orders")["conditions"]
            return next((c for c in conditions if c["type"] == "Rendered"), None)

        until("the Rendered condition", lambda: rendered() is not None)
        condition = rendered()
        assert condition is not None
        assert (condition["status"], condition["reason"]) == ("False", "MissingAPIs")
        message = condition["message"]
        assert (
            "ServiceMonitor → the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor" in message
        )
        assert "PrometheusRule → the cluster does not serve" in message
        assert "ScaledObject → scale to zero needs KEDA" in message
        assert "traffic policy" not in message  # the app has no traffic policy: nothing was left out

        # the same notes as the workload's annotation, one entry per note
        kube = lightkube_client(bare_k8s_env)
        try:
            note = kube.get(Deployment, "orders", namespace=namespace).metadata.annotations[
                "yunzhou.io/not-rendered"
            ]
        finally:
            kube.close()
        assert message.count(" → ") == note.count(" not rendered: ") == 3
        assert "ScaledObject); an HPA with minReplicas 1 scales instead" in message

    env = {**server.client_env(), "COLUMNS": "400"}
    run = [sys.executable, "-m", "yunzhou", "status", "shop/dev/orders"]
    table = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    assert "Rendered" in table
    assert "MissingAPIs" in table
    assert "ServiceMonitor → the cluster does not serve" in table
    shown = subprocess.run(
        [*run, "-o", "json"], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    conditions = json.loads(shown.stdout)["conditions"]
    assert [c["reason"] for c in conditions if c["type"] == "Rendered"] == ["MissingAPIs"]
