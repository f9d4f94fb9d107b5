"""The Kubernetes runtime and platform images, against the real test control plane (kwok nodes): the pod
template refers to <cluster registry>/<project>/<app>@sha256:…, the namespace gets the pull Secret
(kubernetes.io/dockerconfigjson) before the workload, pods become Ready, removing one app leaves the
Secret for the others, and the runtime's render never shows the credential."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

from tests.integration.k8s.conftest import make_intent, web
from yunzhou.runtimes.kubernetes.images import PULL_SECRET, PullCredential
from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.testing.k8s import binaries_available
from yunzhou.testing.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]
DIGEST = "sha256:" + "5e" * 32
PASSWORD = "yzt_not-a-real-token-but-a-secret-all-the-same"


class StaticImages:
    """The control plane's answers (reconcile/cluster_images.py), fixed; counts credential look-ups."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def registry(self, cluster: str) -> str | None:
        return "10.0.0.5:5000"

    def pull_credential(self, project: str) -> PullCredential:
        self.asked.append(project)
        return PullCredential(f"pull-{project}", PASSWORD)


@pytest.fixture
def images() -> StaticImages:
    return StaticImages()


@pytest.fixture
def imaging_runtime(kube: Any, images: StaticImages) -> KubernetesRuntime:
    return KubernetesRuntime(lambda cluster: (kube, "apps.test"), images=images)


def test_a_built_release_runs_its_digest_from_the_clusters_registry_with_the_pull_secret(
    imaging_runtime: KubernetesRuntime, kube: Any, namespace: str, images: StaticImages
) -> None:
    orders = replace(make_intent(namespace, replicas=2), image=f"shop/orders@{DIGEST}")
    payments = replace(
        make_intent(namespace, app="payments", score=web("payments")), image=f"shop/payments@{DIGEST}"
    )

    def ready() -> bool:
        observed = imaging_runtime.apply(orders)
        return observed.converged and observed.ready == 2

    wait_until("orders' 2 pods ready on kwok", ready, timeout=120)
    dep = kube.get(Deployment, "orders", namespace=namespace)
    pod = dep.spec.template.spec
    assert pod.containers[0].image == f"10.0.0.5:5000/shop/orders@{DIGEST}"
    assert [s.name for s in pod.imagePullSecrets] == [PULL_SECRET]
    security = pod.containers[0].securityContext
    assert (security.runAsNonRoot, security.readOnlyRootFilesystem, security.allowPrivilegeEscalation) == (
        True,
        True,
        False,
    )
    assert security.capabilities.drop == ["ALL"]
    assert security.seccompProfile.type == "RuntimeDefault"

    secret = kube.get(Secret, PULL_SECRET, namespace=namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert "yunzhou.io/app" not in secret.metadata.labels
    config = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))
    assert base64.b64decode(config["auths"]["10.0.0.5:5000"]["auth"]).decode() == f"pull-shop:{PASSWORD}"

    # a second app of the project shares the Secret; removing the first one leaves it in place
    imaging_runtime.apply(payments)
    assert _has(kube, namespace, "payments")
    gone = replace(orders, removing=True)
    wait_until("orders removed", lambda: imaging_runtime.apply(gone).gone, timeout=60)
    assert kube.get(Secret, PULL_SECRET, namespace=namespace).type == "kubernetes.io/dockerconfigjson"
    assert set(images.asked) == {"shop"}


def test_the_runtimes_render_shows_the_pinned_image_and_never_the_credential(
    imaging_runtime: KubernetesRuntime, namespace: str, images: StaticImages
) -> None:
    manifests = imaging_runtime.render(replace(make_intent(namespace), image=f"shop/orders@{DIGEST}"))
    text = json.dumps(manifests)
    assert f"10.0.0.5:5000/shop/orders@{DIGEST}" in text
    assert PASSWORD not in text
    assert base64.b64encode(PASSWORD.encode()).decode()[:20] not in text
    (secret,) = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == PULL_SECRET]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["10.0.0.5:5000"]["password"] == "<redacted>"
    assert images.asked == []  # rendering for review never even fetches the credential


def test_an_image_from_another_registry_gets_no_pull_secret(
    imaging_runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    intent = make_intent(namespace)  # registry.test/web:1
    imaging_runtime.apply(intent)
    pod = kube.get(Deployment, "orders", namespace=namespace).spec.template.spec
    assert pod.containers[0].image == "registry.test/web:1"
    assert not pod.imagePullSecrets
    assert not [s for s in kube.list(Secret, namespace=namespace) if s.metadata.name == PULL_SECRET]


def _has(kube: Any, namespace: str, name: str) -> bool:
    return any(d.metadata.name == name for d in kube.list(Deployment, namespace=namespace))
