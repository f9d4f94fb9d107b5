"""A new user moves to Kubernetes: register the test cluster, create an environment on it, deploy with
--wait, and kubectl shows what Yunzhou reports. Real server process, real CLI, real control plane."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_new_user import EXAMPLES, cli, ok
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.k8s import K8sTestEnv, binaries_available, binaries_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


def kubectl(env: K8sTestEnv, *args: str) -> str:
    result = subprocess.run(
        [str(binaries_dir() / "kubectl"), "--kubeconfig", str(env.kubeconfig), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_deploy_to_a_cluster_as_a_new_user(k8s_env: K8sTestEnv, server: ControlPlaneProcess) -> None:
    out = ok(cli(server, "cluster", "add", "kwok", "--kubeconfig", str(k8s_env.kubeconfig)))
    assert "Registered cluster kwok" in out
    clusters = json.loads(ok(cli(server, "cluster", "list", "-o", "json")))
    assert clusters[0]["server_version"].startswith("v1.34")
    ok(cli(server, "project", "create", "shop"))
    ok(
        cli(
            server, "env", "create", "shop/staging", "--target", "cluster:kwok", "--namespace", "shop-staging"
        )
    )

    deployed = ok(cli(server, "deploy", "shop/staging", "-f", str(EXAMPLES / "inventory" / "score.yaml"),
                      "--set", "replicas=3", "--wait", "--timeout", "120"))  # fmt: skip
    assert "succeeded" in deployed
    status = json.loads(ok(cli(server, "status", "shop/staging/inventory", "-o", "json")))
    assert (status["status"], status["ready_replicas"], status["replicas"]) == ("running", 3, 3)

    deployments = json.loads(kubectl(k8s_env, "-n", "shop-staging", "get", "deploy", "-o", "json"))["items"]
    assert [(d["metadata"]["name"], d["status"]["readyReplicas"]) for d in deployments] == [("inventory", 3)]
    services = kubectl(k8s_env, "-n", "shop-staging", "get", "svc", "-o", "name")
    assert "service/inventory" in services
    ingress = json.loads(kubectl(k8s_env, "-n", "shop-staging", "get", "ingress", "inventory", "-o", "json"))
    assert ingress["spec"]["rules"][0]["host"] == "inventory.staging.shop.kwok.localhost"

    instances = json.loads(ok(cli(server, "instances", "shop/staging/inventory", "-o", "json")))
    pods = json.loads(kubectl(k8s_env, "-n", "shop-staging", "get", "pods", "-o", "json"))["items"]
    assert sorted(i["id"] for i in instances) == sorted(p["metadata"]["name"] for p in pods)
    assert all("node kwok-" in i["reason"] or "node " in i["reason"] for i in instances)

    rendered = ok(cli(server, "render", "shop/staging/inventory"))
    assert "kind: Deployment" in rendered
    assert "yunzhou.io/release: '1'" in rendered or 'yunzhou.io/release: "1"' in rendered

    # an unreachable server is refused with a clear message and nothing is stored
    bad = k8s_env.workdir / "bad-kubeconfig"
    bad.write_text(k8s_env.kubeconfig.read_text().replace(k8s_env.server, "https://127.0.0.1:1"))
    refused = cli(server, "cluster", "add", "gone", "--kubeconfig", str(bad))
    assert refused.returncode != 0
    assert "unreachable" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [c["name"] for c in json.loads(ok(cli(server, "cluster", "list", "-o", "json")))] == ["kwok"]
