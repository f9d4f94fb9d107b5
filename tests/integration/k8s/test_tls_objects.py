"""HTTPS through cert-manager on the real API server: the Certificate, the namespace's issuers and the Ingress
`tls` are applied with server-side apply — the API server validates the cert-manager objects against the
CRDs of cert-manager v1.21 (tools/k8s-testenv/crds.sh) — read back, and pruned when TLS is turned off or the
app goes, while the namespace's shared issuers stay for its other apps.

cert-manager's controller does not run here (its binaries are not published as Go modules), so no
Certificate becomes Ready and no Secret is issued: where a test needs an issued Secret it creates one the
way cert-manager marks it (annotation cert-manager.io/certificate-name)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from lightkube import ApiError
from lightkube import codecs as lk_codecs
from lightkube.resources.core_v1 import Secret
from lightkube.resources.networking_v1 import Ingress

from tests.integration.k8s import test_kubernetes_runtime as runtime_tests
from tests.integration.k8s.conftest import make_intent
from tests.integration.k8s.test_kubernetes_runtime import World, web
from yunzhou.runtimes.kubernetes.render_tls import AcmeDirectory
from yunzhou.runtimes.kubernetes.runtime import OPTIONAL_KINDS, KubernetesRuntime
from yunzhou.testing.k8s import binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]
world = runtime_tests.world  # the fixture: a control plane (store, API, reconciler) on the test cluster
CERTIFICATE = OPTIONAL_KINDS["Certificate"]
ISSUER = OPTIONAL_KINDS["Issuer"]


def names(kube: Any, kind: Any, namespace: str) -> list[str]:
    return sorted(o.metadata.name for o in kube.list(kind, namespace=namespace))


def issued_secret(kube: Any, namespace: str, name: str, certificate: str | None) -> None:
    """A Secret as cert-manager writes it for ``certificate`` (None: one made by someone else)."""
    annotations = {"cert-manager.io/certificate-name": certificate} if certificate else {}
    kube.create(Secret.from_dict({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "data": {"tls.crt": "", "tls.key": ""},
    }))  # fmt: skip


def test_certificate_and_ingress_tls_are_accepted_by_the_crds_and_pruned_when_tls_is_off(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    intent = replace(make_intent(namespace), tls="cluster-issuer:letsencrypt-prod")
    rendered = {(m["kind"], m["metadata"]["name"]): m for m in runtime.render(intent)}
    runtime.apply(intent)
    certificate = kube.get(CERTIFICATE, "orders", namespace=namespace).to_dict()
    assert certificate["spec"] == rendered[("Certificate", "orders")]["spec"]
    assert certificate["spec"]["dnsNames"] == ["orders.dev.shop.apps.test"]
    assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    assert {f["manager"] for f in certificate["metadata"]["managedFields"]} == {"yunzhou"}
    ingress = kube.get(Ingress, "orders", namespace=namespace)
    assert [(t.hosts, t.secretName) for t in ingress.spec.tls] == [
        (["orders.dev.shop.apps.test"], "orders-tls")
    ]

    # The API server validates against cert-manager's schema: a key algorithm outside its enum is refused.
    bad = rendered[("Certificate", "orders")]
    bad = {**bad, "spec": {**bad["spec"], "privateKey": {"algorithm": "DSA"}}}
    with pytest.raises(ApiError) as refused:
        kube.apply(lk_codecs.from_dict(bad), field_manager="test", force=True)
    assert refused.value.status.code == 422
    assert "spec.privateKey.algorithm" in str(refused.value)

    # TLS off: the Certificate is pruned, its issued Secret with it, and the Ingress drops its tls section.
    issued_secret(kube, namespace, "orders-tls", certificate="orders")
    runtime.apply(replace(make_intent(namespace, release=2), tls="off"))
    assert names(kube, CERTIFICATE, namespace) == []
    assert "orders-tls" not in names(kube, Secret, namespace)
    assert not kube.get(Ingress, "orders", namespace=namespace).spec.tls


def test_local_ca_issuers_are_shared_by_the_namespace_and_outlive_its_apps(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    orders = replace(make_intent(namespace, app="orders"), tls="local")
    billing = replace(make_intent(namespace, app="billing"), tls="local")
    runtime.apply(orders)
    runtime.apply(billing)
    assert names(kube, ISSUER, namespace) == ["yunzhou.ca", "yunzhou.selfsigned"]
    assert names(kube, CERTIFICATE, namespace) == ["billing", "orders", "yunzhou.ca"]
    ca = kube.get(CERTIFICATE, "yunzhou.ca", namespace=namespace).to_dict()["spec"]
    assert (ca["isCA"], ca["secretName"]) == (True, "yunzhou.ca")
    assert ca["issuerRef"]["name"] == "yunzhou.selfsigned"
    ca_issuer = kube.get(ISSUER, "yunzhou.ca", namespace=namespace).to_dict()["spec"]
    assert ca_issuer == {"ca": {"secretName": "yunzhou.ca"}}
    assert kube.get(CERTIFICATE, "orders", namespace=namespace).to_dict()["spec"]["issuerRef"]["name"] == (
        "yunzhou.ca"
    )

    # Removing orders takes its Certificate; a Secret of its name that cert-manager did not issue stays.
    issued_secret(kube, namespace, "orders-tls", certificate=None)
    obs = runtime.apply(replace(orders, removing=True))
    assert obs.gone
    assert names(kube, CERTIFICATE, namespace) == ["billing", "yunzhou.ca"]
    assert names(kube, ISSUER, namespace) == ["yunzhou.ca", "yunzhou.selfsigned"]  # billing still needs them
    assert "orders-tls" in names(kube, Secret, namespace)

    # Turning TLS off for billing prunes its Certificate only; the namespace CA stays (clients trust it).
    runtime.apply(replace(make_intent(namespace, app="billing", release=2), tls=None))
    assert names(kube, CERTIFICATE, namespace) == ["yunzhou.ca"]
    assert names(kube, ISSUER, namespace) == ["yunzhou.ca", "yunzhou.selfsigned"]


def test_acme_issuer_on_the_platform_directory_is_accepted(kube: Any, namespace: str) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    acme = AcmeDirectory("https://acme.platform.test:14000/dir", "ops@example.com", pem)
    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), acme=acme)
    runtime.apply(replace(make_intent(namespace), tls="acme"))
    issuer = kube.get(ISSUER, "yunzhou.acme", namespace=namespace).to_dict()["spec"]["acme"]
    assert issuer["server"] == "https://acme.platform.test:14000/dir"
    assert issuer["email"] == "ops@example.com"
    assert issuer["privateKeySecretRef"] == {"name": "yunzhou.acme-account"}
    assert issuer["solvers"] == [{"http01": {"ingress": {}}}]
    certificate = kube.get(CERTIFICATE, "orders", namespace=namespace).to_dict()["spec"]
    assert certificate["issuerRef"] == {"name": "yunzhou.acme", "kind": "Issuer", "group": "cert-manager.io"}


def set_tls(world: World, tls: str | None) -> None:
    """The environment's tls as the names service stores it (written here directly: this tests the path
    from the stored setting through the reconciler to the cluster, not the API)."""
    from sqlalchemy import select

    from yunzhou.store.models import Environment

    with world.api.cp.ctx.db.transaction() as s:
        env = s.scalar(select(Environment).where(Environment.name == "dev"))
        assert env is not None
        env.tls = tls


def test_an_environments_tls_reaches_the_cluster_through_the_reconciler(world: World) -> None:
    certificates = f"/apis/cert-manager.io/v1/namespaces/{world.ns}/certificates"
    world.deploy(web("shopfront"))
    assert world.converge("shopfront")["rollout"]["state"] == "succeeded"
    assert world.objects(certificates, "shopfront") == []

    set_tls(world, "cluster-issuer:corp-ca")
    world.controller.reconcile(world.app_id("shopfront"))  # the next pass renders from the stored setting
    (certificate,) = world.objects(certificates, "shopfront")
    assert certificate["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    ingress = world.kube(f"/apis/networking.k8s.io/v1/namespaces/{world.ns}/ingresses/shopfront")
    assert ingress["spec"]["tls"] == [
        {"hosts": certificate["spec"]["dnsNames"], "secretName": "shopfront-tls"}
    ]

    set_tls(world, "off")
    world.controller.reconcile(world.app_id("shopfront"))
    assert world.objects(certificates, "shopfront") == []
    ingress = world.kube(f"/apis/networking.k8s.io/v1/namespaces/{world.ns}/ingresses/shopfront")
    assert "tls" not in ingress["spec"]
