"""HTTPS for an app's routes on a cluster through cert-manager. Pure: plain data in, plain data out.

An app with routes in an environment whose ``tls`` is on gets a ``Certificate`` named after the app
(secret ``<app>-tls``, one DNS name per route host) and its Ingress a ``tls`` section naming that
secret. Where the certificate comes from follows the setting:

- ``issuer:NAME`` / ``cluster-issuer:NAME``: an Issuer/ClusterIssuer that already exists (the usual setup).
- ``acme``: a namespace Issuer ``yunzhou.acme`` on the platform's ACME directory, answering HTTP-01
  through an Ingress of the class the app's Ingress uses.
- ``local``: a CA of the namespace's own — a self-signed Issuer makes the CA certificate ``yunzhou.ca``
  and the CA Issuer ``yunzhou.ca`` signs the apps' certificates — so the platform's CA key never enters
  a cluster.

The namespace's issuers are shared by its apps: they carry no ``yunzhou.io/app`` label, so pruning an
app never removes them (like the image pull Secret). Their names hold a dot, which no app's objects do.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.tls_mode import TlsMode
from yunzhou.runtimes.kubernetes.shape import AppShape, Manifest

API_VERSION = "cert-manager.io/v1"
CERTIFICATE = f"{API_VERSION}/Certificate"
ISSUER = f"{API_VERSION}/Issuer"
LOCAL_CA = "yunzhou.ca"  # the CA Certificate, its Secret and the CA Issuer
SELF_SIGNED = "yunzhou.selfsigned"  # the Issuer that signs the namespace CA itself
ACME_ISSUER = "yunzhou.acme"
ACME_ACCOUNT = "yunzhou.acme-account"  # the Secret cert-manager keeps the ACME account key in
CA_DURATION = "87600h"  # ten years: clients trust the namespace CA once
MISSING = (
    "the cluster does not serve cert-manager.io/v1 {kind} (install cert-manager: its CRDs and controller)"
)


@dataclass(frozen=True)
class AcmeDirectory:
    """The platform's ACME CA, as a cluster's cert-manager is to use it."""

    directory: str  # the ACME directory URL
    email: str | None = None  # the account's contact (expiry notices)
    ca_bundle: str | None = None  # PEM of the CA serving the directory when not publicly trusted


def secret_name(app: str) -> str:
    return f"{app}-tls"


def render_tls(
    w: AppShape,
    hosts: list[str],
    mode: TlsMode,
    apis: frozenset[str],
    *,
    acme: AcmeDirectory | None = None,
    ingress_class: str | None = None,
) -> tuple[list[Manifest], list[str], list[dict[str, Any]]]:
    """(objects, notes, the Ingress's ``tls`` entries) for an app whose Ingress serves ``hosts``."""
    if not mode.enabled or not hosts:
        return [], [], []
    missing = [kind for kind, key in (("Certificate", CERTIFICATE), ("Issuer", ISSUER)) if key not in apis]
    if missing:
        return [], [_not_rendered(MISSING.format(kind=missing[0]))], []
    objects: list[Manifest] = []
    if mode.kind == "issuer":
        issuer = {"name": mode.issuer, "kind": "Issuer", "group": "cert-manager.io"}
    elif mode.kind == "cluster-issuer":
        issuer = {"name": mode.issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"}
    elif mode.kind == "acme":
        if acme is None:
            return [], [_not_rendered("the environment's tls is acme but the platform has no ACME CA")], []
        objects.append(_acme_issuer(w, acme, ingress_class))
        issuer = {"name": ACME_ISSUER, "kind": "Issuer", "group": "cert-manager.io"}
    else:  # local
        objects += _local_ca(w)
        issuer = {"name": LOCAL_CA, "kind": "Issuer", "group": "cert-manager.io"}
    objects.append({
        "apiVersion": API_VERSION, "kind": "Certificate", "metadata": dict(w.metadata),
        "spec": {
            "secretName": secret_name(w.app), "dnsNames": sorted(hosts), "issuerRef": issuer,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    })  # fmt: skip
    return objects, [], [{"hosts": sorted(hosts), "secretName": secret_name(w.app)}]


def _not_rendered(why: str) -> str:
    return f"Certificate not rendered: {why}; the Ingress serves HTTP only"


def _shared_meta(w: AppShape, name: str) -> dict[str, Any]:
    """Metadata of an object the namespace's apps share: no app (nor release) label, so no app prunes it."""
    labels: Mapping[str, str] = w.metadata.get("labels") or {}
    keep = ("app.kubernetes.io/managed-by", "yunzhou.io/project", "yunzhou.io/env")
    return {"name": name, "namespace": w.namespace, "labels": {k: labels[k] for k in keep if k in labels}}


def _acme_issuer(w: AppShape, acme: AcmeDirectory, ingress_class: str | None) -> Manifest:
    spec: dict[str, Any] = {
        "server": acme.directory,
        "privateKeySecretRef": {"name": ACME_ACCOUNT},
        # HTTP-01 through an Ingress cert-manager makes, served by the controller that serves the app's
        "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class} if ingress_class else {}}}],
    }
    if acme.email:
        spec["email"] = acme.email
    if acme.ca_bundle:
        spec["caBundle"] = base64.b64encode(acme.ca_bundle.encode()).decode()
    return {"apiVersion": API_VERSION, "kind": "Issuer", "metadata": _shared_meta(w, ACME_ISSUER),
            "spec": {"acme": spec}}  # fmt: skip


def _local_ca(w: AppShape) -> list[Manifest]:
    """The namespace's own CA: self-signed once, then the Issuer that signs the apps' certificates. The CA
    keeps its key when cert-manager renews it, so clients that trust it go on trusting it."""
    ca_certificate = {
        "isCA": True,
        "commonName": f"Yunzhou {w.project}/{w.env} CA",
        "secretName": LOCAL_CA,
        "duration": CA_DURATION,
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"},
        "issuerRef": {"name": SELF_SIGNED, "kind": "Issuer", "group": "cert-manager.io"},
    }
    return [
        {"apiVersion": API_VERSION, "kind": "Issuer", "metadata": _shared_meta(w, SELF_SIGNED),
         "spec": {"selfSigned": {}}},
        {"apiVersion": API_VERSION, "kind": "Certificate", "metadata": _shared_meta(w, LOCAL_CA),
         "spec": ca_certificate},
        {"apiVersion": API_VERSION, "kind": "Issuer", "metadata": _shared_meta(w, LOCAL_CA),
         "spec": {"ca": {"secretName": LOCAL_CA}}},
    ]  # fmt: skip
