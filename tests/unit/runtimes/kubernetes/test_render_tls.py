"""HTTPS through cert-manager, rendered: Certificate + Ingress tls per environment setting, the namespace's
ACME and local-CA issuers, and what is left out (and said) when the cluster has no cert-manager. Pure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.domain.tls_mode import TlsMode, parse_tls_mode
from yunzhou.runtimes.kubernetes.render import APP_LABEL, NOT_RENDERED, Target, render
from yunzhou.runtimes.kubernetes.render_tls import CERTIFICATE, ISSUER, AcmeDirectory
from yunzhou.runtimes.protocol import AppIntent, RouteSpec

CERT_MANAGER = frozenset({CERTIFICATE, ISSUER})
TARGET = Target("shop-dev", "apps.example.com", apis=CERT_MANAGER)


def intent(tls: str | None, *, ports: bool = True, routes: tuple[RouteSpec, ...] | None = None) -> AppIntent:
    score: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "orders"},
        "containers": {"web": {"image": "registry.test/orders:1"}},
    }
    if ports:
        score["service"] = {"ports": {"http": {"port": 80, "targetPort": 8080}}}
    if routes is None:
        routes = (RouteSpec("orders.dev.shop.localhost"), RouteSpec("shop.example.com", "/api"))
    return AppIntent(1, "shop/dev/orders", 3, score, {}, None, None, 1, False, routes,
                     "cluster:c", "shop-dev", tls=tls)  # fmt: skip


def objects(tls: str | None, target: Target = TARGET, **kw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(intent(tls, **kw), target)}


def test_parse_tls_mode_accepts_the_documented_values() -> None:
    assert parse_tls_mode(None) == parse_tls_mode("off") == TlsMode()
    assert not TlsMode().enabled
    assert parse_tls_mode("local") == TlsMode("local")
    assert parse_tls_mode("acme") == TlsMode("acme")
    assert parse_tls_mode("issuer:letsencrypt") == TlsMode("issuer", "letsencrypt")
    assert parse_tls_mode("cluster-issuer:corp-ca.internal") == TlsMode("cluster-issuer", "corp-ca.internal")


@pytest.mark.parametrize("bad", ["on", "issuer:", "issuer:Upper", "cluster-issuer:a b", "secret:x", 1, True])
def test_parse_tls_mode_names_the_field_and_what_is_allowed(bad: object) -> None:
    with pytest.raises(UserError) as exc:
        parse_tls_mode(bad, "tls")
    assert [p.path for p in exc.value.problems] == ["tls"]
    assert "off, local, acme, issuer:NAME or cluster-issuer:NAME" in exc.value.problems[0].message


@pytest.mark.parametrize("tls", [None, "off"])
def test_tls_off_renders_no_certificate_and_no_ingress_tls(tls: str | None) -> None:
    out = objects(tls)
    assert not {kind for kind, _ in out} & {"Certificate", "Issuer"}
    assert "tls" not in out[("Ingress", "orders")]["spec"]


def test_cluster_issuer_certificate_covers_every_ingress_host_and_the_ingress_names_its_secret() -> None:
    out = objects("cluster-issuer:letsencrypt-prod")
    certificate = out[("Certificate", "orders")]
    ingress = out[("Ingress", "orders")]
    hosts = sorted(rule["host"] for rule in ingress["spec"]["rules"])
    assert hosts == ["orders.dev.shop.apps.example.com", "shop.example.com"]  # the cluster's base domain
    assert certificate["spec"]["dnsNames"] == hosts
    assert certificate["spec"]["secretName"] == "orders-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "letsencrypt-prod", "kind": "ClusterIssuer", "group": "cert-manager.io",
    }  # fmt: skip
    assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": "orders-tls"}]
    assert certificate["metadata"]["labels"][APP_LABEL] == "shop.dev.orders"  # pruned with the app
    assert not [k for k in out if k[0] == "Issuer"]  # an existing issuer: nothing else is made


def test_namespace_issuer_is_referenced_as_an_issuer() -> None:
    certificate = objects("issuer:team-ca")[("Certificate", "orders")]
    issuer = {"name": "team-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert certificate["spec"]["issuerRef"] == issuer


def test_acme_renders_a_namespace_issuer_on_the_platform_directory_with_http01_by_ingress_class() -> None:
    acme = AcmeDirectory(
        "https://acme.internal:14000/dir", "ops@example.com", "-----BEGIN CERTIFICATE-----\n"
    )
    out = objects("acme", replace(TARGET, acme=acme, ingress_class="nginx"))
    issuer = out[("Issuer", "yunzhou.acme")]
    assert issuer["spec"]["acme"] == {
        "server": "https://acme.internal:14000/dir",
        "email": "ops@example.com",
        "privateKeySecretRef": {"name": "yunzhou.acme-account"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}],
        "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
    }
    assert APP_LABEL not in issuer["metadata"]["labels"]  # shared by the namespace's apps: no app prunes it
    assert issuer["metadata"]["labels"]["yunzhou.io/env"] == "dev"
    assert out[("Certificate", "orders")]["spec"]["issuerRef"]["name"] == "yunzhou.acme"
    no_class = objects("acme", replace(TARGET, acme=AcmeDirectory("https://a.test/dir")))
    assert no_class[("Issuer", "yunzhou.acme")]["spec"]["acme"]["solvers"] == [{"http01": {"ingress": {}}}]


def test_acme_without_a_platform_acme_ca_is_left_out_and_said() -> None:
    out = objects("acme")
    assert "tls" not in out[("Ingress", "orders")]["spec"]
    assert not [k for k in out if k[0] in ("Certificate", "Issuer")]
    note = out[("Deployment", "orders")]["metadata"]["annotations"][NOT_RENDERED]
    assert "Certificate not rendered: the environment's tls is acme but the platform has no ACME CA" in note


def test_local_is_a_namespace_ca_bootstrapped_by_a_self_signed_issuer() -> None:
    out = objects("local")
    assert out[("Issuer", "yunzhou.selfsigned")]["spec"] == {"selfSigned": {}}
    ca = out[("Certificate", "yunzhou.ca")]["spec"]
    assert ca["isCA"] is True
    assert ca["secretName"] == "yunzhou.ca"
    assert ca["issuerRef"]["name"] == "yunzhou.selfsigned"
    assert ca["privateKey"]["rotationPolicy"] == "Never"  # renewals keep the key clients trust
    assert out[("Issuer", "yunzhou.ca")]["spec"] == {"ca": {"secretName": "yunzhou.ca"}}
    assert out[("Certificate", "orders")]["spec"]["issuerRef"]["name"] == "yunzhou.ca"
    shared = [o for (kind, name), o in out.items() if name.startswith("yunzhou.")]
    assert len(shared) == 3
    assert all(APP_LABEL not in o["metadata"]["labels"] for o in shared)
    assert all("yunzhou.io/release" not in o["metadata"]["labels"] for o in shared)  # same for every release


def test_without_cert_manager_the_ingress_stays_http_and_the_workload_says_why() -> None:
    out = objects("cluster-issuer:letsencrypt-prod", replace(TARGET, apis=frozenset()))
    assert "tls" not in out[("Ingress", "orders")]["spec"]
    assert not [k for k in out if k[0] in ("Certificate", "Issuer")]
    note = out[("Deployment", "orders")]["metadata"]["annotations"][NOT_RENDERED]
    assert "Certificate not rendered: the cluster does not serve cert-manager.io/v1 Certificate" in note


@pytest.mark.parametrize("kw", [{"ports": False}, {"routes": ()}])
def test_an_app_without_an_ingress_gets_no_certificate(kw: dict[str, Any]) -> None:
    out = objects("local", **kw)
    assert not [k for k in out if k[0] in ("Certificate", "Issuer", "Ingress")]


def test_an_invalid_stored_setting_is_a_permanent_error_naming_the_field() -> None:
    with pytest.raises(PermanentError) as exc:
        render(intent("issuer:"), TARGET)
    assert [p.path for p in exc.value.problems] == ["tls"]


def test_the_servers_acme_settings_become_the_acme_directory_clusters_use(tmp_path: Path) -> None:
    from yunzhou.local_platform import TlsSettings
    from yunzhou.server import cluster_acme

    assert cluster_acme(TlsSettings()) is None  # no ACME CA: environments with tls acme are noted, not served
    bundle = tmp_path / "root.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings = TlsSettings(
        acme_directory="https://acme.test/dir", acme_email="ops@example.com", acme_ca_bundle=bundle
    )
    assert cluster_acme(settings) == AcmeDirectory(
        "https://acme.test/dir", "ops@example.com", bundle.read_text()
    )
    assert cluster_acme(TlsSettings(acme_directory="https://acme.test/dir")) == AcmeDirectory(
        "https://acme.test/dir"
    )
