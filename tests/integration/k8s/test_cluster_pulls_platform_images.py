"""The same image on every target, end to end: a real `yunzhou server` (with its managed registry) and the
real test control plane (kwok nodes). A Score `image: shop/web:1.2` deployed to a local and a cluster
environment records the same pinned digest; `yunzhou render` shows it in the pod template prefixed with
the cluster's registry address; the namespace's pull Secret holds a credential the REAL registry accepts
for pulls of shop's repositories and refuses for another project's; a moved tag never changes a release."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

from tests.integration.k8s.conftest import lightkube_client
from tests.integration.registry.managed import small_image
from yunzhou.build.oci import ImageStore
from yunzhou.cli.clusters import flatten_kubeconfig
from yunzhou.client import YunzhouClient
from yunzhou.client.errors import ApiError
from yunzhou.domain.errors import UserError
from yunzhou.registry.client import RegistryClient
from yunzhou.runtimes.kubernetes.images import PULL_SECRET
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.k8s import K8sTestEnv, binaries_available
from yunzhou.testing.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400 if binaries_available() else 3600)]


@dataclass
class World:
    server: ControlPlaneProcess
    client: YunzhouClient
    registry_url: str  # as the control plane reaches it: http://127.0.0.1:PORT
    registry: str  # host:port
    namespace: str
    kube: Any
    store: ImageStore

    def push(self, repository: str, tag: str, content: bytes, tmp: Path) -> str:
        digest = small_image(self.store, tmp, content)
        with RegistryClient(self.registry_url, username="admin", password=self.server.admin_token) as admin:
            admin.push(self.store, repository, digest, tag=tag)
        return digest

    def pod_image(self) -> str | None:
        deployments = [
            d for d in self.kube.list(Deployment, namespace=self.namespace) if d.metadata.name == "web"
        ]
        return deployments[0].spec.template.spec.containers[0].image if deployments else None


def score(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": image}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }


@pytest.fixture(scope="module")
def world(k8s_env: K8sTestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("cluster-images")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    with ControlPlaneProcess(tmp / "data") as server, YunzhouClient(server.url, server.admin_token) as client:
        address = json.loads((tmp / "data" / "registry" / "address.json").read_text())
        flat, context = flatten_kubeconfig(k8s_env.kubeconfig, None)
        client.add_cluster("kwok", flat, context, None)  # the default registry: the platform's own address
        for project in ("shop", "bank"):
            client.create_project(project)
        client.create_environment("shop", "dev")
        client.create_environment("shop", "prod", target="cluster:kwok", namespace=namespace)
        kube = lightkube_client(k8s_env)
        try:
            yield World(
                server, client, address["url"], httpx.URL(address["url"]).netloc.decode(), namespace, kube,
                ImageStore(tmp / "store"),
            )  # fmt: skip
        finally:
            kube.close()


def test_local_and_cluster_record_the_same_digest_and_render_shows_it(world: World, tmp_path: Path) -> None:
    digest = world.push("shop/web", "1.2", b"release one", tmp_path)
    local = world.client.deploy("shop", "dev", score("shop/web:1.2"), {"replicas": 0})
    cluster = world.client.deploy("shop", "prod", score("shop/web:1.2"))
    assert local["release"]["image"] == cluster["release"]["image"] == f"web=shop/web@{digest}"
    stored = world.client.get_release("shop", "prod", "web", cluster["release"]["number"])
    assert stored["score"]["containers"]["web"]["image"] == f"shop/web@{digest}"  # never the tag

    rendered = world.client.render("shop", "prod", "web", show_secrets=True)
    (deployment,) = [m for m in rendered if m["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"{world.registry}/shop/web@{digest}"
    assert pod["imagePullSecrets"] == [{"name": PULL_SECRET}]
    (secret,) = [m for m in rendered if m["kind"] == "Secret" and m["metadata"]["name"] == PULL_SECRET]
    shown = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert shown["auths"][world.registry]["password"] == "<redacted>"  # even an admin's --show-secrets

    # the CLI says the same
    cli = subprocess.run(
        [sys.executable, "-m", "yunzhou", "render", "shop/prod/web"],
        env=world.server.client_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert f"image: {world.registry}/shop/web@{digest}" in cli.stdout

    wait_until("the Deployment on the cluster", lambda: world.pod_image() is not None, timeout=120)
    assert world.pod_image() == f"{world.registry}/shop/web@{digest}"


def test_the_pull_secret_pulls_this_project_only_from_the_real_registry(world: World, tmp_path: Path) -> None:
    digest = world.push("shop/web", "1.2", b"release one", tmp_path)
    bank = world.push("bank/ledger", "1", b"the bank's", tmp_path)
    if world.pod_image() is None:
        world.client.deploy("shop", "prod", score("shop/web:1.2"))

    def secret() -> Any:
        found = [
            s for s in world.kube.list(Secret, namespace=world.namespace) if s.metadata.name == PULL_SECRET
        ]
        return found[0] if found else None

    pulled = wait_until("the pull Secret in the namespace", secret, timeout=120)
    assert pulled.type == "kubernetes.io/dockerconfigjson"
    entry = json.loads(base64.b64decode(pulled.data[".dockerconfigjson"]))["auths"][world.registry]
    username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    assert (username, password) == (entry["username"], entry["password"])
    with RegistryClient(world.registry_url, username=username, password=password) as node:
        assert node.resolve("shop/web", "1.2") == digest
        assert node.pull("shop/web", digest, ImageStore(tmp_path / "pulled")) == digest
        with pytest.raises(UserError):
            node.pull("bank/ledger", bank, ImageStore(tmp_path / "stolen"))
        with pytest.raises(UserError):  # nor push to its own project
            node.push(world.store, "shop/web", bank, tag="evil")
    # and against the platform API it opens nothing
    r = httpx.get(f"{world.server.url}/api/v1/projects/shop", headers={"Authorization": f"Bearer {password}"})
    assert r.status_code == 403, r.text


def test_a_moved_tag_changes_no_release_and_an_unknown_tag_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    first = world.push("shop/web", "1.2", b"release one", tmp_path)
    deployed = world.client.deploy("shop", "prod", score("shop/web:1.2"))
    number = deployed["release"]["number"]
    moved = world.push("shop/web", "1.2", b"release two", tmp_path)  # the tag now names another image
    assert moved != first
    old = world.client.get_release("shop", "prod", "web", number)
    assert old["score"]["containers"]["web"]["image"] == f"shop/web@{first}"
    again = world.client.deploy("shop", "prod", score("shop/web:1.2"))
    assert again["release"]["image"] == f"web=shop/web@{moved}"
    wait_until(
        "the cluster runs the new digest",
        lambda: world.pod_image() == f"{world.registry}/shop/web@{moved}",
        timeout=120,
    )

    releases = len(world.client.list_releases("shop", "prod", "web"))
    with pytest.raises(ApiError) as exc:
        world.client.deploy("shop", "prod", score("shop/web:nope"))
    assert exc.value.status == 422
    problems = {p.path: p.message for p in exc.value.problems}
    assert "cannot resolve shop/web:nope" in problems["containers.web.image"]
    assert len(world.client.list_releases("shop", "prod", "web")) == releases


def test_a_clusters_registry_address_reaches_the_pod_template(world: World, tmp_path: Path) -> None:
    digest = world.push("shop/web", "1.2", b"release one", tmp_path)
    world.client.deploy("shop", "prod", score("shop/web:1.2"))
    world.client.set_cluster_registry("kwok", "10.0.0.5:5000")
    try:
        wait_until(
            "the nodes' registry address in the pod template",
            lambda: world.pod_image() == f"10.0.0.5:5000/shop/web@{digest}",
            timeout=120,
        )
    finally:
        world.client.set_cluster_registry("kwok", None)
