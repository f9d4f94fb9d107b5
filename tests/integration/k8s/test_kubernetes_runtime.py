"""The Kubernetes runtime against a real control plane (kube-apiserver + controller-manager + scheduler +
kwok nodes): register a cluster, deploy, scale, update, roll back, prune — through the API and the real
reconciler, then check what the cluster holds."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Api
from yunzhou.reconcile import AppController, Timing
from yunzhou.reconcile.clusters import ClusterDirectory
from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.services import ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.testing.k8s import K8sTestEnv, binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]
V1 = "/api/v1"


class World:
    def __init__(self, api: Api, controller: AppController, k8s: httpx.Client, namespace: str) -> None:
        self.api, self.controller, self.k8s, self.ns = api, controller, k8s, namespace

    def app_id(self, name: str) -> str:
        from sqlalchemy import select

        from yunzhou.store.models import App

        with self.api.cp.ctx.db.transaction() as s:
            return str(s.scalar(select(App.id).where(App.name == name)))

    def converge(self, name: str, timeout: float = 90.0) -> dict[str, Any]:
        """Run reconcile passes (as the worker would) until the app's rollout has ended."""
        deadline = time.monotonic() + timeout
        key = self.app_id(name)
        while time.monotonic() < deadline:
            self.controller.reconcile(key)
            app = self.get(name)
            if app["rollout"] and app["rollout"]["state"] in ("succeeded", "failed"):
                return app
            time.sleep(0.2)  # the worker's requeue interval while a rollout progresses
        raise AssertionError(f"{name} did not converge: {self.get(name)}")

    def get(self, name: str) -> dict[str, Any]:
        r = self.api.http.get(f"{V1}/projects/shop/environments/dev/apps/{name}", headers=self.api.admin)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def deploy(self, score: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.api.http.post(
            f"{V1}/projects/shop/environments/dev/deployments",
            json={"score": score, "settings": settings}, headers=self.api.admin,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def kube(self, path: str) -> Any:
        r = self.k8s.get(path)
        return r.json() if r.status_code == 200 else None

    def objects(self, kind_path: str, app: str) -> list[dict[str, Any]]:
        body = self.kube(f"{kind_path}?labelSelector=yunzhou.io/app=shop.dev.{app}")
        return body["items"] if body else []


def web(name: str, image: str = "registry.test/web:1") -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": {"image": image, "variables": {"MODE": "k8s"}}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }


@pytest.fixture
def world(k8s_env: K8sTestEnv, tmp_path: Path) -> Iterator[World]:
    from yunzhou.server import cluster_probe

    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(db, tmp_path / "data", cluster_probe=cluster_probe)
    assert cp.ctx.secret_box is not None
    directory = ClusterDirectory(db, cp.ctx.secret_box)
    runtimes = {"cluster": KubernetesRuntime(directory.connect)}
    controller = AppController(
        db,
        runtimes,
        cp.data_dir,
        cp.ctx.clock,
        timing=Timing(progressing_requeue=0.2),
        secret_box=cp.ctx.secret_box,
    )
    cp.ctx.renderer = controller.render
    api = Api(cp)
    namespace = f"shop-dev-{tmp_path.name[-6:].replace('_', '-').strip('-')}".lower()
    with api.http, k8s_env.client(timeout=10) as k8s:
        kubeconfig = yaml.safe_load(k8s_env.kubeconfig.read_text())
        r = api.http.post(
            f"{V1}/clusters", json={"name": "kwok", "kubeconfig": kubeconfig}, headers=api.admin
        )
        assert r.status_code == 201, r.text
        assert r.json()["server_version"].startswith("v1.")
        api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin)
        r = api.http.post(
            f"{V1}/projects/shop/environments",
            json={"name": "dev", "target": "cluster:kwok", "namespace": namespace}, headers=api.admin,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        yield World(api, controller, k8s, namespace)
        k8s.delete(f"/api/v1/namespaces/{namespace}")
    directory.close()
    db.dispose()


def _pods_ready(world: World, app: str) -> list[dict[str, Any]]:
    pods = world.objects(f"/api/v1/namespaces/{world.ns}/pods", app)

    def ready(pod: dict[str, Any]) -> bool:
        conditions = pod.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return [p for p in pods if ready(p)]


def _eventually(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_deploy_scale_update_rollback_and_prune(world: World) -> None:
    ns = world.ns
    world.deploy(web("orders"), {"replicas": 3, "routes": [{"host": "orders.example.test", "path": "/"}]})
    app = world.converge("orders")
    assert app["rollout"]["state"] == "succeeded", app
    assert (app["status"], app["ready_replicas"]) == ("running", 3)
    dep = world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/orders")
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "yunzhou"
    assert dep["metadata"]["managedFields"][0]["manager"] == "yunzhou"
    assert world.kube(f"/api/v1/namespaces/{ns}/services/orders") is not None
    ingress = world.kube(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/orders")
    assert {r["host"] for r in ingress["spec"]["rules"]} == {
        "orders.dev.shop.kwok.localhost",
        "orders.example.test",
    }
    ready = _pods_ready(world, "orders")
    assert len(ready) == 3
    assert all(p["spec"]["nodeName"].startswith("kwok-") or p["spec"]["nodeName"] for p in ready)
    instances = world.api.http.get(
        f"{V1}/projects/shop/environments/dev/apps/orders/instances", headers=world.api.admin
    ).json()["items"]
    assert len(instances) == 3
    assert all(i["ready"] for i in instances)

    # a second app in the same namespace, which pruning of the first must leave alone
    world.deploy(web("billing"))
    assert world.converge("billing")["rollout"]["state"] == "succeeded"

    # scale to 5
    r = world.api.http.put(f"{V1}/projects/shop/environments/dev/apps/orders/replicas", json={"replicas": 5},
                           headers=world.api.admin)  # fmt: skip
    assert r.status_code == 200
    assert world.converge("orders")["ready_replicas"] == 5
    _eventually("5 ready pods", lambda: len(_pods_ready(world, "orders")) == 5)

    # update the image: a new ReplicaSet rolls out
    first_rs = {
        rs["metadata"]["name"] for rs in world.objects(f"/apis/apps/v1/namespaces/{ns}/replicasets", "orders")
    }
    world.deploy(
        web("orders", image="registry.test/web:2"),
        {"replicas": 5, "routes": [{"host": "orders.example.test"}]},
    )
    assert world.converge("orders")["rollout"]["state"] == "succeeded"
    dep = world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/orders")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/web:2"
    rs_now = world.objects(f"/apis/apps/v1/namespaces/{ns}/replicasets", "orders")
    active = [rs for rs in rs_now if rs["spec"]["replicas"] > 0]
    assert len(active) == 1
    assert active[0]["metadata"]["name"] not in first_rs

    # rollback restores the previous pod template (image 1)
    r = world.api.http.post(f"{V1}/projects/shop/environments/dev/apps/orders/rollback", json={},
                            headers=world.api.admin)  # fmt: skip
    assert r.status_code == 201, r.text
    assert world.converge("orders")["rollout"]["state"] == "succeeded"
    dep = world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/orders")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/web:1"

    # removing the extra route prunes it from the Ingress; the other app's objects are untouched
    billing_before = world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/billing")["metadata"][
        "resourceVersion"
    ]
    patch: dict[str, Any] = {"settings": {"routes": []}}
    r = world.api.http.patch(f"{V1}/projects/shop/environments/dev/apps/orders/settings", json=patch,
                             headers=world.api.admin)  # fmt: skip
    assert r.status_code == 201, r.text
    world.converge("orders")
    ingress = world.kube(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/orders")
    assert {r["host"] for r in ingress["spec"]["rules"]} == {"orders.dev.shop.kwok.localhost"}
    assert (
        world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/billing")["metadata"]["resourceVersion"]
        == billing_before
    )

    # scaling to one replica prunes the PodDisruptionBudget
    world.api.http.put(f"{V1}/projects/shop/environments/dev/apps/orders/replicas", json={"replicas": 1},
                       headers=world.api.admin)  # fmt: skip
    world.converge("orders")
    assert world.kube(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/orders") is None
    assert (
        world.kube(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/billing") is None
    )  # never had one

    # render shows what was applied
    rendered = world.api.http.get(f"{V1}/projects/shop/environments/dev/apps/orders/render",
                                  headers=world.api.admin).json()["items"]  # fmt: skip
    # (the session's cluster serves the prometheus-operator and Istio CRDs, so every app also gets its
    # alert rules and its own ServiceAccount)
    kinds = ["ServiceAccount", "ConfigMap", "Service", "Deployment", "Ingress", "PrometheusRule"]
    assert [o["kind"] for o in rendered] == kinds

    # removing the app deletes everything it owned
    world.api.http.delete(f"{V1}/projects/shop/environments/dev/apps/billing", headers=world.api.admin)
    key = world.app_id("billing")

    def billing_gone() -> bool:
        world.controller.reconcile(key)  # one pass, as the worker would run it
        return not world.objects(
            f"/apis/apps/v1/namespaces/{ns}/deployments", "billing"
        ) and not world.objects(f"/api/v1/namespaces/{ns}/services", "billing")

    _eventually("billing's objects to be deleted", billing_gone)
    assert (
        world.api.http.get(
            f"{V1}/projects/shop/environments/dev/apps/billing", headers=world.api.admin
        ).status_code
        == 404
    )  # and its record with them


def test_a_bad_kubeconfig_is_a_clear_error_and_stores_nothing(k8s_env: K8sTestEnv, api_with_k8s: Api) -> None:
    kubeconfig = yaml.safe_load(k8s_env.kubeconfig.read_text())
    user = kubeconfig["users"][0]["user"]
    user.pop("client-certificate-data", None)
    user.pop("client-key-data", None)
    user["token"] = "not-a-valid-token"
    r = api_with_k8s.http.post(f"{V1}/clusters", json={"name": "bad", "kubeconfig": kubeconfig},
                               headers=api_with_k8s.admin)  # fmt: skip
    assert r.status_code == 422, r.text
    assert "credentials were rejected" in r.json()["error"]["message"]
    unreachable = yaml.safe_load(k8s_env.kubeconfig.read_text())
    unreachable["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    r = api_with_k8s.http.post(f"{V1}/clusters", json={"name": "gone", "kubeconfig": unreachable},
                               headers=api_with_k8s.admin)  # fmt: skip
    assert r.status_code == 503, r.text
    assert "unreachable" in r.json()["error"]["message"]
    assert api_with_k8s.http.get(f"{V1}/clusters", headers=api_with_k8s.admin).json()["items"] == []


@pytest.fixture
def api_with_k8s(tmp_path: Path) -> Iterator[Api]:
    from yunzhou.server import cluster_probe

    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    api = Api(ControlPlane.create(db, tmp_path / "data", cluster_probe=cluster_probe))
    with api.http:
        yield api
    db.dispose()


def test_config_and_secrets_on_kubernetes(world: World) -> None:
    ns = world.ns
    h = world.api.admin
    env = f"{V1}/projects/shop/environments/dev"
    assert world.api.http.patch(f"{env}/config", json={"set": {"MODE": "fast"}}, headers=h).status_code == 200
    put = world.api.http.put(f"{env}/secrets/DB_PASSWORD", json={"value": "k8s-canary-3f9a"}, headers=h)
    assert put.status_code in (200, 201), put.text
    doc = web("ledger")
    doc["resources"] = {"env": {"type": "environment"}, "creds": {"type": "secret"}}
    doc["containers"]["web"]["variables"] = {
        "MODE": "${resources.env.MODE}",
        "PASSWORD": "${resources.creds.DB_PASSWORD}",
    }
    world.deploy(doc, {"replicas": 2})
    assert world.converge("ledger")["rollout"]["state"] == "succeeded"
    secret = world.kube(f"/api/v1/namespaces/{ns}/secrets/ledger-web-secret-env")
    assert base64.b64decode(secret["data"]["PASSWORD"]).decode() == "k8s-canary-3f9a"
    assert world.kube(f"/api/v1/namespaces/{ns}/configmaps/ledger-web-env")["data"] == {"MODE": "fast"}
    dep = world.kube(f"/apis/apps/v1/namespaces/{ns}/deployments/ledger")
    assert "k8s-canary-3f9a" not in json.dumps(dep)
    rendered = world.api.http.get(f"{env}/apps/ledger/render", headers=h).text
    assert "k8s-canary-3f9a" not in rendered
    assert "<redacted>" in rendered
    before = {
        rs["metadata"]["name"] for rs in world.objects(f"/apis/apps/v1/namespaces/{ns}/replicasets", "ledger")
    }

    # a config change makes a new release, and the cluster a new ReplicaSet with the new value
    assert world.api.http.patch(f"{env}/config", json={"set": {"MODE": "slow"}}, headers=h).status_code == 200
    assert world.converge("ledger")["rollout"]["state"] == "succeeded"
    assert world.kube(f"/api/v1/namespaces/{ns}/configmaps/ledger-web-env")["data"] == {"MODE": "slow"}
    after = world.objects(f"/apis/apps/v1/namespaces/{ns}/replicasets", "ledger")
    active = [rs["metadata"]["name"] for rs in after if rs["spec"]["replicas"] > 0]
    assert len(active) == 1
    assert active[0] not in before


def test_logs_of_pods_on_nodes_that_cannot_serve_them_say_so(world: World) -> None:
    world.api.cp.ctx.runtime_logs = world.controller.logs  # as the composition root wires it
    world.deploy(web("echo"))
    assert world.converge("echo")["rollout"]["state"] == "succeeded"
    r = world.api.http.get(f"{V1}/projects/shop/environments/dev/apps/echo/logs", headers=world.api.admin)
    assert r.status_code == 503, r.text  # the kubelet may come back: a temporary failure, with Retry-After
    message = r.json()["error"]["message"]
    assert "the node kwok-node-" in message
    assert "cannot serve the logs of pod echo-" in message
    assert "kubelet did not answer" in message


def test_a_hand_edit_of_an_owned_field_is_reported_as_a_conflict_not_overwritten(world: World) -> None:
    world.deploy(web("tuned"), {"replicas": 2})
    assert world.converge("tuned")["rollout"]["state"] == "succeeded"
    # someone scales the Deployment by hand (a different field manager now owns spec.replicas)
    patched = world.k8s.patch(
        f"/apis/apps/v1/namespaces/{world.ns}/deployments/tuned",
        json={"spec": {"replicas": 4}},
        headers={"Content-Type": "application/merge-patch+json"},
        params={"fieldManager": "kubectl-edit"},
    )
    assert patched.status_code == 200, patched.text
    # the next periodic re-apply must not force it back silently: it reports the conflict
    runtime = next(iter(world.controller.runtimes.values()))
    assert isinstance(runtime, KubernetesRuntime)
    runtime.reapply_every = 0.0
    world.controller.reconcile(world.app_id("tuned"))
    app = world.get("tuned")
    progressing = next(c for c in app["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False"
    assert "conflict" in progressing["message"].lower()
    assert "spec.replicas" in progressing["message"] or "replicas" in progressing["message"]
    dep = world.kube(f"/apis/apps/v1/namespaces/{world.ns}/deployments/tuned")
    assert dep["spec"]["replicas"] == 4  # left as the person set it


def test_every_kind_we_render_is_accepted_by_the_server(k8s_env: K8sTestEnv) -> None:
    """Server-side dry-run of a release that renders every kind: StatefulSet with a claim template,
    Service, Ingress, ConfigMaps for variables and files, a Secret, a PodDisruptionBudget."""
    from lightkube import codecs

    from yunzhou.runtimes.kubernetes.cluster import client_for
    from yunzhou.runtimes.kubernetes.render import Target, render
    from yunzhou.runtimes.protocol import AppIntent, RouteSpec

    doc = web("vault")
    doc["containers"]["web"].update(
        variables={"MODE": "${resources.env.MODE}", "TOKEN": "${resources.creds.TOKEN}"},
        files={"/etc/vault.conf": {"content": "mode=${resources.env.MODE}\n", "mode": "0640"}},
        volumes={"/data": {"source": "data"}},
        readinessProbe={"httpGet": {"path": "/ready", "port": 8080}},
        livenessProbe={"exec": {"command": ["/bin/true"]}},
        resources={"limits": {"cpu": "250m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
    )
    doc["resources"] = {
        "env": {"type": "environment"},
        "creds": {"type": "secret"},
        "data": {"type": "volume", "params": {"size": "2Gi"}},
    }
    intent = AppIntent(
        app_id=1, address="shop/dev/vault", release=3, score=doc, settings={"rollout": {"maxSurge": "25%"}},
        artifact=None, artifact_digest=None, replicas=3, removing=False,
        routes=(RouteSpec("vault.dev.shop.localhost"), RouteSpec("vault.example.test", "/api")),
        target="cluster:kwok", namespace="default",
        resource_outputs={"env": {"MODE": "strict"}, "creds": {"TOKEN": "dry-run-token"}},
        egress=False,  # the environment's egress switched off: a NetworkPolicy
    )  # fmt: skip
    objects = render(intent, Target("default", "kwok.test"))
    assert {o["kind"] for o in objects} == {
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "Ingress",
    }
    client = client_for(yaml.safe_load(k8s_env.kubeconfig.read_text()), None)
    try:
        for obj in objects:
            client.apply(codecs.from_dict(obj), dry_run=True)  # raises ApiError (422) if the server disagrees
    finally:
        client.close()


def test_switching_an_environments_egress_off_and_on_adds_and_prunes_its_network_policy(world: World) -> None:
    policies = f"/apis/networking.k8s.io/v1/namespaces/{world.ns}/networkpolicies"
    r = world.api.http.patch(
        f"{V1}/projects/shop/environments/dev", json={"egress": False}, headers=world.api.admin
    )
    assert r.status_code == 200, r.text
    world.deploy(web("sealed"))
    assert world.converge("sealed")["rollout"]["state"] == "succeeded"
    (policy,) = world.objects(policies, "sealed")
    assert policy["metadata"]["name"] == "sealed-no-egress"
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["egress"] == [{"to": [{"namespaceSelector": {}}]}]

    r = world.api.http.patch(
        f"{V1}/projects/shop/environments/dev", json={"egress": True}, headers=world.api.admin
    )
    assert r.status_code == 200, r.text
    world.deploy(web("sealed", image="registry.test/web:2"))  # the next release renders without it
    assert world.converge("sealed")["rollout"]["state"] == "succeeded"
    assert world.objects(policies, "sealed") == []
