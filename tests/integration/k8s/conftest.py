"""Fixtures for applying rendered objects to the real test control plane: a lightkube client on the
session's cluster (which has the CRD bundle installed), a namespace per test, and a runtime wired to it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError

from yunzhou.runtimes.kubernetes.cluster import client_for
from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime
from yunzhou.runtimes.protocol import AppIntent, RouteSpec
from yunzhou.testing.k8s import K8sTestEnv


def lightkube_client(env: K8sTestEnv) -> Any:
    return client_for(yaml.safe_load(env.kubeconfig.read_text()), None, timeout=30)


@pytest.fixture
def kube(k8s_env: K8sTestEnv) -> Iterator[Any]:
    client = lightkube_client(k8s_env)
    yield client
    client.close()


@pytest.fixture
def namespace(kube: Any) -> Iterator[str]:
    """A fresh namespace name (the runtime creates it); deleted with everything in it afterwards."""
    from lightkube.resources.core_v1 import Namespace

    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


@pytest.fixture
def runtime(kube: Any) -> KubernetesRuntime:
    return KubernetesRuntime(lambda cluster: (kube, "apps.test"))


def make_intent(
    namespace: str,
    *,
    app: str = "orders",
    score: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    replicas: int = 1,
    release: int = 1,
) -> AppIntent:
    return AppIntent(
        app_id=abs(hash((namespace, app))) % 10**9,
        address=f"shop/dev/{app}",
        release=release,
        score=score or web(app),
        settings=settings or {},
        artifact=None,
        artifact_digest=None,
        replicas=replicas,
        removing=False,
        routes=(RouteSpec(f"{app}.dev.shop.localhost"),),
        target="cluster:kwok",
        namespace=namespace,
    )


def web(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": {"image": "registry.test/web:1", **container}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }


@pytest.fixture(scope="module")
def bare_k8s_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sTestEnv]:
    """A second control plane WITHOUT the CRD bundle (and no nodes): what an ordinary cluster looks like."""
    with K8sTestEnv(Path(tmp_path_factory.mktemp("k8s-bare")), nodes=0, crds=False) as env:
        yield env
