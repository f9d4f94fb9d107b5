"""Render a release into Kubernetes objects, as plain data. Pure: no I/O, deterministic.

Objects: Deployment (StatefulSet when a container mounts a `volume` resource), Service (when the workload
declares ports), Ingress (one rule per route), a ConfigMap per container for its variables and one for
its inline files, and a PodDisruptionBudget when replicas > 1. Every object carries the
`app.kubernetes.io/*` and `yunzhou.io/*` labels; `yunzhou.io/app` is what pruning selects on.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import FieldProblem, PermanentError, UserError
from yunzhou.domain.image_refs import container_images
from yunzhou.domain.score import Container, Workload, parse_score, substitute
from yunzhou.domain.score import Probe as ScoreProbe
from yunzhou.domain.settings import RolloutStrategy, progress_deadline
from yunzhou.domain.tls_mode import parse_tls_mode
from yunzhou.runtimes.kubernetes.images import PULL_SECRET, container_image, harden
from yunzhou.runtimes.kubernetes.render_autoscale import DEFAULT_PROMETHEUS, render_autoscale
from yunzhou.runtimes.kubernetes.render_observe import render_observe
from yunzhou.runtimes.kubernetes.render_tls import AcmeDirectory, render_tls
from yunzhou.runtimes.kubernetes.render_traffic import (
    Split,
    canary_objects,
    canary_replicas,
    choose_mode,
    render_traffic,
)
from yunzhou.runtimes.kubernetes.shape import AppShape
from yunzhou.runtimes.protocol import AppIntent

Manifest = dict[str, Any]
MANAGER = "yunzhou"
APP_LABEL = "yunzhou.io/app"
CHECKSUM = "yunzhou.io/config-checksum"
# apply order: what others reference comes first
KIND_ORDER = (
    "ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "PodDisruptionBudget",
    "Issuer", "Certificate", "Ingress",
    "HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor", "PrometheusRule",
    "DestinationRule", "VirtualService", "HTTPRoute", "NetworkPolicy", "AuthorizationPolicy",
    "PeerAuthentication",
)  # fmt: skip
NOT_RENDERED = "yunzhou.io/not-rendered"  # workload annotation: optional objects left out, and why


@dataclass(frozen=True)
class Target:
    namespace: str
    base_domain: str = "localhost"
    ingress_class: str | None = None
    # optional kinds the cluster serves, as "apiVersion/Kind" (discovery.Discovery.apis); CRD-backed objects
    # (ServiceMonitor, VirtualService, ScaledObject, …) are rendered only when their kind is here
    apis: frozenset[str] = frozenset()
    prometheus_url: str = DEFAULT_PROMETHEUS  # what KEDA's prometheus triggers query
    traffic_mode: str | None = None  # "istio" | "gateway"; None: Istio when served, else Gateway API
    cluster: str = ""
    # host[:port] the cluster's nodes pull platform images from (None: the platform has no registry)
    registry: str | None = None
    acme: AcmeDirectory | None = None  # the platform's ACME CA, for environments whose tls is "acme"


def app_key(address: str) -> str:
    """A label value naming an app uniquely in a cluster: project.env.app (labels allow dots, not /)."""
    return address.replace("/", ".")


def labels(intent: AppIntent, name: str) -> dict[str, str]:
    project, env, _ = intent.address.split("/")
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": f"{name}-{env}",
        "app.kubernetes.io/version": f"r{intent.release}",
        "app.kubernetes.io/managed-by": MANAGER,
        "yunzhou.io/project": project,
        "yunzhou.io/env": env,
        "yunzhou.io/release": str(intent.release),
        APP_LABEL: app_key(intent.address),
    }


def _meta(intent: AppIntent, name: str, target: Target, kind_name: str | None = None) -> dict[str, Any]:
    return {"name": kind_name or name, "namespace": target.namespace, "labels": labels(intent, name)}


def _probe(probe: ScoreProbe | None) -> dict[str, Any] | None:
    if probe is None:
        return None
    if probe.exec is not None:
        return {"exec": {"command": list(probe.exec.command)}}
    assert probe.http_get is not None
    h = probe.http_get
    get: dict[str, Any] = {"path": h.path or "/", "port": h.port}
    if h.scheme:
        get["scheme"] = h.scheme
    if h.host:
        get["host"] = h.host
    if h.headers:
        get["httpHeaders"] = [{"name": x.name, "value": x.value} for x in h.headers]
    return {"httpGet": get}


def _checksum(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _container(
    intent: AppIntent, app: str, cname: str, c: Container, target: Target, objects: list[Manifest]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # a crashed container's last log lines become its terminated state's message (read into status)
    spec: dict[str, Any] = {
        "name": cname,
        "image": c.image,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if c.command is not None:
        spec["command"] = list(c.command)
    if c.args is not None:
        spec["args"] = list(c.args)
    secrets = intent.secret_values()
    for part, values in (("command", c.command or ()), ("args", c.args or ())):
        if any(_holds_secret(v, secrets) for v in values):
            raise PermanentError(
                f"containers.{cname}.{part} uses a secret: Kubernetes would show it in the pod spec; "
                "pass it as a variable instead",
                problems=[
                    FieldProblem(f"containers.{cname}.{part}", "must not contain secrets on kubernetes")
                ],
            )
    plain = {k: v for k, v in sorted(c.variables.items()) if not _holds_secret(v, secrets)}
    hidden = {k: v for k, v in sorted(c.variables.items()) if _holds_secret(v, secrets)}
    env_from: list[dict[str, Any]] = []
    if plain:
        cm_name = f"{app}-{cname}-env"
        meta = _meta(intent, app, target, cm_name)
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": plain})
        env_from.append({"configMapRef": {"name": cm_name}})
    if hidden:
        secret_name = f"{app}-{cname}-secret-env"
        objects.append(_secret(intent, app, target, secret_name, hidden))
        env_from.append({"secretRef": {"name": secret_name}})
    if env_from:
        spec["envFrom"] = env_from
    resources: dict[str, Any] = {}
    for part in ("limits", "requests"):
        value = getattr(c.resources, part)
        if value is not None and value.to_dict():
            resources[part] = value.to_dict()
    if resources:
        spec["resources"] = resources
    for key, probe in (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe)):
        rendered = _probe(probe)
        if rendered is not None:
            spec[key] = rendered
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    inline = dict(c.files.items())
    if inline:
        cm_name = f"{app}-{cname}-files"
        data: dict[str, str] = {}
        binary: dict[str, str] = {}
        items = []
        for i, (path, f) in enumerate(sorted(inline.items())):
            key = f"file-{i}"
            if f.content is not None:
                data[key] = f.content
            elif f.binary_content is not None:
                binary[key] = f.binary_content
            else:
                raise PermanentError(
                    f"containers.{cname}.files.{path}.source: a file taken from the source tree cannot be "
                    "mounted on Kubernetes yet; inline it with `content`",
                    problems=[
                        FieldProblem(f"containers.{cname}.files.{path}.source", "not supported on kubernetes")
                    ],
                )
            item: dict[str, Any] = {"key": key, "path": key}
            if f.mode:
                item["mode"] = int(f.mode, 8)
            items.append(item)
            mounts.append({"name": "files", "mountPath": path, "subPath": key, "readOnly": True})
        if any(_holds_secret(v, secrets) for v in data.values()):
            # a file carrying a secret is mounted from a Secret, never from a ConfigMap
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()} | binary
            objects.append(_secret(intent, app, target, cm_name, encoded, encoded=True))
            volumes.append({"name": "files", "secret": {"secretName": cm_name, "items": items}})
        else:
            cm: Manifest = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(intent, app, target, cm_name),
            }
            if data:
                cm["data"] = data
            if binary:
                cm["binaryData"] = binary
            objects.append(cm)
            volumes.append({"name": "files", "configMap": {"name": cm_name, "items": items}})
    claims = []
    for path, v in sorted(c.volumes.items()):
        mount = {"name": v.source, "mountPath": path, "readOnly": bool(v.read_only)}
        if v.path:
            mount["subPath"] = v.path.lstrip("/")
        mounts.append(mount)
        claims.append(v.source)
    if mounts:
        spec["volumeMounts"] = mounts
    return spec, volumes + [{"claim": name} for name in claims]


def render(intent: AppIntent, target: Target, *, split: Split | None = None) -> list[Manifest]:
    """Raises PermanentError (with field paths) when the release cannot be expressed on Kubernetes."""
    try:
        workload: Workload = substitute(parse_score(dict(intent.score)), intent.resource_outputs)
    except UserError as exc:
        raise PermanentError(
            f"cannot render release {intent.release}: {exc.message}", problems=exc.problems
        ) from exc
    app = intent.address.split("/")[2]
    objects: list[Manifest] = []
    containers = []
    pod_volumes: list[dict[str, Any]] = []
    claims: list[str] = []
    for cname, c in workload.containers.items():
        spec, vols = _container(intent, app, cname, c, target, objects)
        containers.append(spec)
        for v in vols:
            if "claim" in v:
                claims.append(v["claim"])
            elif v not in pod_volumes:
                pod_volumes.append(v)
    pulls = _images(intent, workload, containers, target)
    harden(containers, pod_volumes)
    volume_resources = {n for n, r in workload.resources.items() if r.type == "volume"}
    unknown = sorted(set(claims) - volume_resources)
    if unknown:
        raise PermanentError(
            f"volumes refer to {', '.join(unknown)}, which are not resources of type volume",
            problems=[FieldProblem("resources", f"declare {n} with type: volume") for n in unknown],
        )
    selector = {APP_LABEL: app_key(intent.address)}
    pod_labels = labels(intent, app)
    checksum = _checksum(
        [o for o in objects if o["kind"] == "ConfigMap"],
        [(o["metadata"]["name"], sorted(o["data"])) for o in objects if o["kind"] == "Secret"],
    )
    pod: dict[str, Any] = {
        "metadata": {"labels": pod_labels, "annotations": {CHECKSUM: checksum}},
        "spec": {"containers": containers, "enableServiceLinks": False},
    }
    if pod_volumes:
        pod["spec"]["volumes"] = pod_volumes
    if pulls:  # the namespace's Secret with the project's pull-only credential (images.py)
        pod["spec"]["imagePullSecrets"] = [{"name": PULL_SECRET}]
    settings = intent.settings
    strategy = settings.get("rollout") or {}
    rolling = RolloutStrategy("rolling", strategy.get("maxSurge", 1), strategy.get("maxUnavailable", 0))
    ports = workload.service.ports if workload.service else {}
    if ports:
        for spec in containers[:1]:
            spec["ports"] = [
                {"name": name, "containerPort": p.effective_target_port, "protocol": p.protocol or "TCP"}
                for name, p in sorted(ports.items())
            ]
            # PORT, as on the local target (the Heroku convention): the port the app must listen on
            first = ports[min(ports)]
            spec["env"] = [{"name": "PORT", "value": str(first.effective_target_port)}]
        service_ports = [
            {
                "name": name,
                "port": p.port,
                "targetPort": p.effective_target_port,
                "protocol": p.protocol or "TCP",
            }
            for name, p in sorted(ports.items())
        ]
        objects.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta(intent, app, target),
            "spec": {"selector": selector, "ports": service_ports},
        })  # fmt: skip
    if claims:
        objects.append({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(intent, app, target),
            "spec": {
                "replicas": intent.replicas, "serviceName": app, "selector": {"matchLabels": selector},
                "template": pod,
                "volumeClaimTemplates": [_claim(n, workload) for n in sorted(set(claims))],
            },
        })  # fmt: skip
    else:
        objects.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(intent, app, target),
            "spec": {
                "replicas": intent.replicas, "selector": {"matchLabels": selector}, "template": pod,
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": int(progress_deadline(settings)),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "maxSurge": rolling.max_surge, "maxUnavailable": rolling.max_unavailable}},
            },
        })  # fmt: skip
    if intent.replicas > 1:
        objects.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(intent, app, target),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        })  # fmt: skip
    ingress = _ingress(intent, app, target, sorted(ports)) if ports and intent.routes else None
    if ingress is not None:
        objects.append(ingress)
    if not intent.egress:
        objects.append(_no_egress(intent, app, target, selector))
    project, env, _ = intent.address.split("/")
    shape = AppShape(
        project, env, app, app_key(intent.address), target.namespace,
        "StatefulSet" if claims else "Deployment", {name: p.port for name, p in ports.items()},
        _meta(intent, app, target),
    )  # fmt: skip
    workload_object = next(o for o in objects if o["kind"] == shape.kind)
    objects += _optional_objects(intent, target, shape, workload_object, split, ingress)
    return sorted(objects, key=lambda o: (KIND_ORDER.index(o["kind"]), o["metadata"]["name"]))


def _no_egress(intent: AppIntent, app: str, target: Target, selector: dict[str, str]) -> Manifest:
    """The environment's egress policy off: the app's pods reach pods of the cluster (other apps, DNS in
    kube-system) and nothing outside it, as the local target's NAT is switched off. NetworkPolicy allows
    only: a peer of every namespace is every pod, so any address outside the pod network is refused."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(intent, app, target, f"{app}-no-egress"),
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"namespaceSelector": {}}]}]},
    }  # fmt: skip


def _images(intent: AppIntent, workload: Workload, containers: list[dict[str, Any]], target: Target) -> bool:
    """Set each container's image (a platform image prefixed with the cluster's registry address);
    True when one of them is pulled from the platform registry."""
    images = container_images({n: c.image for n, c in workload.containers.items()}, intent.image)
    project = intent.address.split("/")[0]
    pulls = False
    for spec in containers:
        name = spec["name"]
        where = f"containers.{name}.image"
        spec["image"], platform = container_image(
            images[name], project, target.registry, target.cluster, where
        )
        pulls = pulls or platform
    return pulls


def _optional_objects(
    intent: AppIntent,
    target: Target,
    shape: AppShape,
    workload: Manifest,
    split: Split | None,
    ingress: Manifest | None,
) -> list[Manifest]:
    """Objects of kinds the cluster may not serve (target.apis); what is left out is noted on the workload."""
    objects, notes = render_observe(shape, intent.settings, target.apis)
    if ingress is not None:  # HTTPS through cert-manager (render_tls.py)
        try:
            mode = parse_tls_mode(intent.tls)
        except UserError as exc:
            raise PermanentError(f"the environment's {exc.message}", problems=exc.problems) from exc
        hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
        certificates, tls_notes, tls = render_tls(
            shape, hosts, mode, target.apis, acme=target.acme, ingress_class=target.ingress_class
        )
        if tls:
            ingress["spec"]["tls"] = tls
        objects += certificates
        notes += tls_notes
    scalers, scale_notes = render_autoscale(
        shape, intent.settings, target.apis, target.prometheus_url, floor=intent.replicas
    )
    if scalers:  # the autoscaler owns the replica count: the workload leaves it alone
        del workload["spec"]["replicas"]
    objects += scalers
    notes += scale_notes
    if choose_mode(target.apis, target.traffic_mode) == "istio":
        # Istio's identities are ServiceAccounts: one per app, so "A may call B" can name A
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(shape.metadata)})
        workload["spec"]["template"]["spec"]["serviceAccountName"] = shape.app
    routing, traffic_notes = render_traffic(
        shape, intent.settings, target.apis, intent.release, mode=target.traffic_mode, split=split
    )
    objects += routing
    notes += traffic_notes
    if notes:
        workload["metadata"]["annotations"] = {NOT_RENDERED: "; ".join(notes)}
    return objects


def render_canary(stable: AppIntent, canary: AppIntent, weight: int, target: Target) -> list[Manifest]:
    """A canary in progress: the stable release's objects with the route objects weighting ``weight``% to
    the canary, plus the canary release's Deployment ``<app>-canary`` (and its config) sized to its share."""
    app = stable.address.split("/")[2]
    objects = render(stable, target, split=Split(stable.release, canary.release, weight))
    extra = canary_objects(render(canary, target), app, canary.release)
    for o in extra:
        if o["kind"] == "Deployment":
            o["spec"]["replicas"] = canary_replicas(canary, stable.replicas, weight)
    return sorted(objects + extra, key=lambda o: (KIND_ORDER.index(o["kind"]), o["metadata"]["name"]))


def _holds_secret(value: str, secrets: frozenset[str]) -> bool:
    return any(secret in value for secret in secrets)


def _secret(
    intent: AppIntent,
    app: str,
    target: Target,
    name: str,
    values: Mapping[str, str],
    *,
    encoded: bool = False,
) -> Manifest:
    """A Secret object (values base64-encoded, as `data`); `yunzhou render` redacts it unless asked."""
    data = dict(values) if encoded else {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    meta = _meta(intent, app, target, name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": dict(sorted(data.items())),
    }


def _claim(name: str, workload: Workload) -> dict[str, Any]:
    size = str((workload.resources[name].params or {}).get("size", "1Gi"))
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def _ingress(intent: AppIntent, app: str, target: Target, port_names: list[str]) -> Manifest:
    project, env, _ = intent.address.split("/")
    rules: dict[str, list[dict[str, Any]]] = {}
    for r in intent.routes:
        host = r.host
        if host.endswith(".localhost") and target.base_domain != "localhost":
            host = (
                f"{app}.{env}.{project}.{target.base_domain}"  # the cluster's base domain for internal names
            )
        rules.setdefault(host, []).append({
            "path": r.path, "pathType": "Prefix",
            "backend": {"service": {"name": app, "port": {"name": port_names[0]}}},
        })  # fmt: skip
    spec: dict[str, Any] = {
        "rules": [{"host": h, "http": {"paths": paths}} for h, paths in sorted(rules.items())]
    }
    if target.ingress_class:
        spec["ingressClassName"] = target.ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _meta(intent, app, target),
            "spec": spec}  # fmt: skip


def pod_template_hash(manifests: list[Manifest]) -> str:
    """A stable digest of what would make Kubernetes roll pods (used to detect a no-op apply)."""
    for o in manifests:
        if o["kind"] in ("Deployment", "StatefulSet"):
            return _checksum(o["spec"]["template"])
    return ""


def encode_binary(data: bytes) -> str:
    return base64.b64encode(data).decode()


def by_kind(manifests: list[Manifest]) -> Mapping[str, list[Manifest]]:
    out: dict[str, list[Manifest]] = {}
    for o in manifests:
        out.setdefault(o["kind"], []).append(o)
    return out
