"""The Kubernetes target's Runtime: render → server-side apply (field manager `yunzhou`) → prune → observe.

Kubernetes' own Deployment controller performs the rollout; this reports its progress from the
Deployment's status and the pods. A pass whose rendered objects equal what it last applied sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from lightkube import ApiError
from lightkube import codecs as lk_codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget

from yunzhou.domain.canary import MetricQuery
from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.domain.masking import SecretMask
from yunzhou.runtimes.base import InstanceStatus, stderr_tail
from yunzhou.runtimes.kubernetes.canary import CanaryDriver
from yunzhou.runtimes.kubernetes.cluster import translated
from yunzhou.runtimes.kubernetes.discovery import OPTIONAL_APIS, Discovery, api_key
from yunzhou.runtimes.kubernetes.images import (
    PULL_SECRET,
    ClusterImages,
    PullCredential,
    pull_secret,
    pulls_platform_images,
)
from yunzhou.runtimes.kubernetes.render import (
    APP_LABEL,
    NOT_RENDERED,
    Manifest,
    Target,
    app_key,
    render,
    render_canary,
)
from yunzhou.runtimes.kubernetes.render_tls import AcmeDirectory, secret_name
from yunzhou.runtimes.protocol import AppIntent, AppObservation

# lightkube's overloads are typed per resource class; objects here are built from rendered data, so
# the client is used through Any at this thin I/O layer (rendering, the part with logic, is fully typed).
Connect = Callable[[str], tuple[Any, str]]  # cluster name → (lightkube Client, the cluster's base domain)
KINDS: dict[str, Any] = {
    "ServiceAccount": ServiceAccount,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
    "Service": Service,
    "Deployment": Deployment,
    "StatefulSet": StatefulSet,
    "PodDisruptionBudget": PodDisruptionBudget,
    "Ingress": Ingress,
    "NetworkPolicy": NetworkPolicy,
}
# Kinds a cluster may not serve (CRDs, HPA v2): listed for pruning only when discovery found them.
OPTIONAL_KINDS: dict[str, Any] = {"HorizontalPodAutoscaler": HorizontalPodAutoscaler}
_PLURALS = {  # of the CRD kinds Yunzhou renders (lightkube needs them to build a generic resource)
    "ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules",
    "VirtualService": "virtualservices", "DestinationRule": "destinationrules",
    "AuthorizationPolicy": "authorizationpolicies", "PeerAuthentication": "peerauthentications",
    "HTTPRoute": "httproutes", "ScaledObject": "scaledobjects",
    "Certificate": "certificates", "Issuer": "issuers",
}  # fmt: skip
for _api_version, _kinds in OPTIONAL_APIS.items():
    _group, _, _version = _api_version.rpartition("/")
    for _kind in _kinds:
        if _kind in _PLURALS:
            OPTIONAL_KINDS[_kind] = create_namespaced_resource(_group, _version, _kind, _PLURALS[_kind])
OPTIONAL_KEYS = {kind: api_key(v, kind) for v, kinds in OPTIONAL_APIS.items() for kind in kinds}


class FirstUse:
    """Serialise the first use of each lightkube (operation, kind): msgspec 0.22, which lightkube decodes
    and converts with, compiles a type lazily on first use and segfaults when threads race to do it
    (reproduced: 8 threads converting a cold Deployment crash every time; warmed, never). After one
    completed use of a key, calls run concurrently."""

    def __init__(self) -> None:
        self._warm: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, operation: str, kind: str) -> Iterator[None]:
        key = (operation, kind)
        if key in self._warm:
            yield
            return
        with self._lock:
            yield
            self._warm.add(key)


FIRST_USE = FirstUse()  # process-wide: the race is in the library's per-process type cache


AUTOSCALERS = ("HorizontalPodAutoscaler", "ScaledObject")
POD_LIST_MAX_AGE = 10.0  # seconds a pod list is reused while the workload's numbers stand still
REAPPLY_EVERY = 300.0  # seconds: unchanged objects are applied again, so drift made by hand is undone


def _digest(manifests: list[Manifest]) -> str:
    return hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()


class KubernetesRuntime:
    def __init__(
        self,
        connect: Connect,
        *,
        reapply_every: float = REAPPLY_EVERY,
        discovery: Discovery | None = None,
        traffic_modes: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        metric_query: MetricQuery | None = None,
        images: ClusterImages | None = None,
        acme: AcmeDirectory | None = None,
    ) -> None:
        self.connect = connect
        self.acme = acme  # the platform's ACME CA, for environments whose tls is "acme" (render_tls.py)
        self.images = images  # each cluster's registry address and each project's pull credential
        # canary rollouts' step driver; metric_query evaluates a step analysis' custom query
        self.canaries = CanaryDriver(clock, metric_query)
        self.traffic_modes = dict(traffic_modes or {})  # cluster → "istio" | "gateway" (else: auto)
        self.reapply_every = reapply_every
        self.discovery = discovery or Discovery()
        self._applied: dict[int, tuple[str, float]] = {}  # app id → (digest, when) of the last good apply
        self._objects: dict[int, set[tuple[str, str]]] = {}  # app id → (kind, name) last applied
        self._pods: dict[
            int, tuple[tuple[Any, ...], tuple[InstanceStatus, ...], float]
        ] = {}  # app id → last pod list
        self._namespaces: set[tuple[str, str]] = set()
        self._replaced: dict[int, set[str]] = {}  # app id → pods deleted for the restart of instances
        self._where: dict[int, tuple[str, str, str]] = {}  # app id → (cluster, namespace, app key)
        self._lock = threading.Lock()

    def render(self, intent: AppIntent) -> list[Manifest]:
        cluster, namespace = self._placement(intent)
        client, base_domain = self.connect(cluster)
        target = self._target(cluster, client, namespace, base_domain)
        manifests = render(intent, target)
        # shown as it will be, with the credential masked: `yunzhou render` never shows it, even to an admin
        masked = self._pull_secret(intent, target, manifests, PullCredential.masked())
        return manifests if masked is None else [masked, *manifests]

    def _target(self, cluster: str, client: Any, namespace: str, base_domain: str) -> Target:
        apis = self.discovery.apis(cluster, client)
        registry = self.images.registry(cluster) if self.images is not None else None
        mode = self.traffic_modes.get(cluster)
        return Target(
            namespace, base_domain, apis=apis, traffic_mode=mode, cluster=cluster, registry=registry,
            acme=self.acme,
        )  # fmt: skip

    def _pull_secret(
        self, intent: AppIntent, target: Target, manifests: list[Manifest], credential: PullCredential | None
    ) -> Manifest | None:
        """The namespace's pull Secret when the workload pulls platform images (with ``credential``, or the
        project's own when None)."""
        if self.images is None or target.registry is None or not pulls_platform_images(manifests):
            return None
        project = intent.address.split("/")[0]
        if credential is None:
            credential = self.images.pull_credential(project)
        return pull_secret(target.namespace, project, target.registry, credential)

    @staticmethod
    def _placement(intent: AppIntent) -> tuple[str, str]:
        kind, _, cluster = intent.target.partition(":")
        if kind != "cluster" or not cluster or not intent.namespace:
            raise PermanentError(
                f"{intent.address}: target {intent.target!r} is not a cluster with a namespace"
            )
        return cluster, intent.namespace

    def apply(
        self, intent: AppIntent, *, canary: AppIntent | None = None, canary_weight: int = 0
    ) -> AppObservation:
        """Converge the app to ``intent``. With ``canary``, that release runs beside it as
        ``<app>-canary`` and the route objects send it ``canary_weight`` %; the next apply without one
        prunes the canary's objects (promotion applies the canary's intent, abort the stable's).
        Without ``canary``, an intent whose settings say ``rollout.strategy: canary`` is driven step by
        step by ``self.canaries`` (``canary.py``) while an older release runs."""
        if canary is not None:
            return self._apply(intent, canary, canary_weight)
        step = self.canaries.plan(intent)
        if step is None:
            observed = self._apply(intent, None, 0)
            if intent.removing:
                self.canaries.forget(intent.app_id)
            else:
                self.canaries.applied(intent)
            return observed
        self._pods.pop(intent.app_id, None)  # the canary's pods' readiness decides the step's clock
        observed = self._apply(step.stable, step.canary, step.weight)
        if step.canary is None:  # aborted: the stable release is what runs
            self.canaries.applied(step.stable)
        return self.canaries.observed(intent, step, observed)

    def _apply(self, intent: AppIntent, canary: AppIntent | None, canary_weight: int) -> AppObservation:
        cluster, namespace = self._placement(intent)
        client, base_domain = self.connect(cluster)
        key = app_key(intent.address)
        with self._lock:
            self._where[intent.app_id] = (cluster, namespace, key)
        if intent.removing:
            deleted = self._prune(client, cluster, namespace, key, keep=set())
            left = self._owned(client, cluster, namespace, key)
            self._applied.pop(intent.app_id, None)
            self._objects.pop(intent.app_id, None)
            waiting = f"deleting {len(left)} object(s)" if left else ""
            return AppObservation(
                (), 0, 0, converged=False, gone=not left, actions=deleted, waiting_for=waiting
            )
        target = self._target(cluster, client, namespace, base_domain)
        if canary is not None:
            manifests = render_canary(intent, canary, canary_weight, target)
        else:
            manifests = render(intent, target)
        actions = 0
        secret = self._pull_secret(intent, target, manifests, None)
        digest = _digest(manifests if secret is None else [*manifests, secret])  # a new credential: apply
        last = self._applied.get(intent.app_id)
        if last is None or last[0] != digest or time.monotonic() - last[1] >= self.reapply_every:
            self._ensure_namespace(client, cluster, namespace)
            if secret is not None:  # before the pods that pull with it; never pruned with an app
                with FIRST_USE("apply", "Secret"), translated(cluster, f"applying Secret/{PULL_SECRET}"):
                    client.apply(lk_codecs.from_dict(secret), force=False)
            for m in manifests:
                with (
                    FIRST_USE("apply", m["kind"]),
                    translated(cluster, f"applying {m['kind']}/{m['metadata']['name']}"),
                ):
                    client.apply(lk_codecs.from_dict(m), force=False)
            # objects without the app's label (the namespace's TLS issuers) are shared: never pruned by an app
            keep = {
                (m["kind"], m["metadata"]["name"]) for m in manifests if APP_LABEL in m["metadata"]["labels"]
            }
            previous = self._objects.get(intent.app_id)
            if previous is None:  # first apply by this process: what the cluster holds is the truth
                pruned = self._prune(client, cluster, namespace, key, keep)
            else:  # what we applied last time, minus what we apply now
                pruned = self._delete(client, cluster, namespace, previous - keep)
            actions = len(manifests) + pruned
            self._applied[intent.app_id] = (digest, time.monotonic())
            self._objects[intent.app_id] = keep
        deleted = self._replace_pods(client, cluster, namespace, intent)
        actions += deleted
        autoscaled = any(m["kind"] in AUTOSCALERS for m in manifests)
        observed = self._observe(client, cluster, namespace, key, intent, actions, autoscaled=autoscaled)
        if deleted:  # the workload's status has not seen the deletion yet: not converged on this pass
            observed = replace(observed, converged=False, waiting_for=f"replacing {deleted} pod(s)")
        return replace(observed, not_rendered=not_rendered(manifests, intent))

    def logs(
        self, intent: AppIntent, *, since_seconds: int | None, instance: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Pod logs through the API server (which asks each node's kubelet), newest ``limit`` per pod; the
        release's secret values masked as on the local target (docs/logs.md)."""
        cluster, namespace = self._placement(intent)
        previous = intent.previous.secret_values() if intent.previous else frozenset()
        mask = SecretMask.of(intent.secret_values() | previous)
        client, _ = self.connect(cluster)
        with FIRST_USE("list", "Pod"), translated(cluster, "listing pods"):
            pods = list(client.list(Pod, namespace=namespace, labels={APP_LABEL: app_key(intent.address)}))
        records: list[dict[str, Any]] = []
        for pod in pods:
            name = pod.metadata.name
            if instance and name != instance:
                continue
            node = pod.spec.nodeName if pod.spec else None
            try:
                with translated(cluster, f"reading the logs of pod {name}"):
                    lines = list(client.log(name, namespace=namespace, timestamps=True, tail_lines=limit,
                                            since=since_seconds, newlines=False))  # fmt: skip
            except (PermanentError, TemporaryError) as exc:
                # The API server fetches logs from the node's kubelet; when that fails the reason is the
                # node's, said as such (kwok's simulated nodes, for one, run no kubelet at all).
                message = (
                    f"the node {node or '?'} cannot serve the logs of pod {name}: its kubelet did not answer "
                    f"the API server ({exc.message})"
                )
                raise type(exc)(message) from exc
            release = int((pod.metadata.labels or {}).get("yunzhou.io/release", "0") or 0)
            for line in lines:
                stamp, _, text = line.partition(" ")
                records.append(
                    {"instance": name, "time": stamp, "stream": "stdout", "line": mask.apply(text),
                     "release": release}
                )  # fmt: skip
        return sorted(records, key=lambda r: str(r["time"]))

    def forget(self, app_id: int) -> int:
        self.canaries.forget(app_id)
        where = self._where.pop(app_id, None)
        self._applied.pop(app_id, None)
        self._objects.pop(app_id, None)
        self._pods.pop(app_id, None)
        self._replaced.pop(app_id, None)
        if where is None:
            return 0
        cluster, namespace, key = where
        client, _ = self.connect(cluster)
        return self._prune(client, cluster, namespace, key, keep=set())

    # ---- pieces
    def _replace_pods(self, client: Any, cluster: str, namespace: str, intent: AppIntent) -> int:
        """Delete, once each, the pods a restart of instances names; the Deployment's (StatefulSet's)
        controller starts their replacements. Returns how many deletions were sent."""
        with self._lock:
            if not intent.replace_instances:
                self._replaced.pop(intent.app_id, None)
                return 0
            done = self._replaced.setdefault(intent.app_id, set())
            todo = sorted(set(intent.replace_instances) - done)
        for pod in todo:
            with FIRST_USE("delete", "Pod"), translated(cluster, f"deleting pod {pod}"):
                try:
                    client.delete(Pod, pod, namespace=namespace)
                except ApiError as exc:
                    if exc.status.code != 404:  # already gone is what we wanted
                        raise
            with self._lock:
                done.add(pod)  # after it went: a failed deletion is tried again on the next pass
        return len(todo)

    def _ensure_namespace(self, client: Any, cluster: str, namespace: str) -> None:
        if (cluster, namespace) in self._namespaces:
            return
        meta = {"name": namespace, "labels": {"app.kubernetes.io/managed-by": "yunzhou"}}
        ns = Namespace.from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
        try:
            with FIRST_USE("apply", "Namespace"):
                client.apply(ns, force=False)
        except ApiError as exc:
            if exc.status.code != 403:
                with translated(cluster, f"creating namespace {namespace}"):
                    raise
            # not allowed to manage namespaces: then it must exist already
            with FIRST_USE("get", "Namespace"), translated(cluster, f"reading namespace {namespace}"):
                client.get(Namespace, namespace)
        self._namespaces.add((cluster, namespace))

    def _owned(self, client: Any, cluster: str, namespace: str, key: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        served = self.discovery.apis(cluster, client)
        optional = {k: r for k, r in OPTIONAL_KINDS.items() if OPTIONAL_KEYS[k] in served}
        for kind, res in (KINDS | optional).items():
            with FIRST_USE("list", kind), translated(cluster, f"listing {kind}"):
                items = client.list(res, namespace=namespace, labels={APP_LABEL: key})
                found += [(kind, o.metadata.name) for o in items]
        return found

    def _prune(self, client: Any, cluster: str, namespace: str, key: str, keep: set[tuple[str, str]]) -> int:
        """Delete what this app owned that the release no longer renders (selected by its label only)."""
        owned = set(self._owned(client, cluster, namespace, key))
        return self._delete(client, cluster, namespace, owned - keep)

    @staticmethod
    def _delete(client: Any, cluster: str, namespace: str, objects: set[tuple[str, str]]) -> int:
        for kind, name in sorted(objects):
            with FIRST_USE("delete", kind), translated(cluster, f"deleting {kind}/{name}"):
                try:
                    client.delete((KINDS | OPTIONAL_KINDS)[kind], name, namespace=namespace)
                except ApiError as exc:
                    if exc.status.code != 404:  # already gone is what we wanted
                        raise
            if kind == "Certificate":
                _delete_issued_secret(client, cluster, namespace, name)
        return len(objects)

    def _observe(
        self,
        client: Any,
        cluster: str,
        namespace: str,
        key: str,
        intent: AppIntent,
        actions: int,
        *,
        autoscaled: bool = False,
    ) -> AppObservation:
        name = intent.address.split("/")[2]
        deployment = True
        obj: Any
        with FIRST_USE("get", "workload"), translated(cluster, "reading the workload"):
            try:
                obj = client.get(Deployment, name, namespace=namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                deployment = False
                obj = client.get(StatefulSet, name, namespace=namespace)
        status = obj.status
        # with an HPA/ScaledObject the autoscaler's number (the workload's spec) is what to converge to
        want = (
            (obj.spec.replicas if obj.spec and obj.spec.replicas is not None else 1)
            if autoscaled
            else intent.replicas
        )
        generation = obj.metadata.generation or 0
        observed_gen = (status.observedGeneration if status else 0) or 0
        updated = (status.updatedReplicas if status else 0) or 0
        ready = (status.readyReplicas if status else 0) or 0
        total = (status.replicas if status else 0) or 0
        available = (getattr(status, "availableReplicas", None) if status else 0) or 0
        failure = ""
        for cond in (status.conditions or []) if status else []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                failure = f"ProgressDeadlineExceeded: {cond.message}"
            if cond.type == "ReplicaFailure" and cond.status == "True":
                failure = f"ReplicaFailure: {cond.message}"
        # Pods are listed when the workload's numbers move (or actions were taken); otherwise the last list
        # stands — a thousand progressing apps would otherwise list their pods on every pass.
        fingerprint = (generation, observed_gen, updated, ready, total, available, failure)
        cached = self._pods.get(intent.app_id)
        fresh = cached is not None and time.monotonic() - cached[2] < POD_LIST_MAX_AGE
        if cached is not None and fresh and cached[0] == fingerprint and actions == 0:
            instances = cached[1]
        else:
            with FIRST_USE("list", "Pod"), translated(cluster, "listing pods"):
                pods = list(client.list(Pod, namespace=namespace, labels={APP_LABEL: key}))
            instances = tuple(
                sorted((_pod_status(p, intent.address) for p in pods), key=lambda s: s.instance_id)
            )
            self._pods[intent.app_id] = (fingerprint, instances, time.monotonic())
        converged = observed_gen >= generation and updated == want and ready == want and total == want
        if deployment:
            converged = converged and available == want
        current = sum(1 for i in instances if i.ready and i.release == intent.release)
        crashing = [
            i for i in instances if i.release == intent.release and i.state == "crashloop" and i.restarts >= 3
        ]
        if crashing and not failure:
            failure = (
                f"CrashLoopBackOff: pod {crashing[0].instance_id} keeps exiting ({crashing[0].last_exit})"
            )
        waiting = "" if converged else f"{updated}/{want} updated, {ready}/{want} ready"
        return AppObservation(instances, ready, current, converged, False, actions, waiting, failure)


def _delete_issued_secret(client: Any, cluster: str, namespace: str, certificate: str) -> None:
    """cert-manager leaves a deleted Certificate's Secret behind (unless its controller runs with
    --enable-certificate-owner-ref): delete it with the Certificate when cert-manager marked it as that
    Certificate's (annotation cert-manager.io/certificate-name); a Secret of that name made elsewhere stays.
    """
    name = secret_name(certificate)
    with FIRST_USE("get", "Secret"), translated(cluster, f"reading Secret/{name}"):
        try:
            found = client.get(Secret, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return
            raise
    if (found.metadata.annotations or {}).get("cert-manager.io/certificate-name") != certificate:
        return
    with FIRST_USE("delete", "Secret"), translated(cluster, f"deleting Secret/{name}"):
        try:
            client.delete(Secret, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise


def not_rendered(manifests: list[Manifest], intent: AppIntent) -> tuple[str, ...]:
    """What the app's workload notes as left out (``yunzhou.io/not-rendered``), one entry per note."""
    name = intent.address.split("/")[2]
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet") and m["metadata"]["name"] == name:
            note = (m["metadata"].get("annotations") or {}).get(NOT_RENDERED, "")
            notes: list[str] = []
            for part in filter(None, note.split("; ")):
                if notes and "rendered" not in part:  # a note's own "; …" (e.g. what happens instead)
                    notes[-1] += "; " + part
                else:
                    notes.append(part)
            return tuple(notes)
    return ()


def _pod_status(pod: Any, address: str) -> InstanceStatus:
    status = pod.status
    labels = pod.metadata.labels or {}
    ready = (
        any(c.type == "Ready" and c.status == "True" for c in (status.conditions or [])) if status else False
    )
    restarts = 0
    last_exit = None
    waiting_reason = ""
    message = ""  # the crashed container's last log lines (terminationMessagePolicy FallbackToLogsOnError)
    for cs in (status.containerStatuses or []) if status else []:
        restarts += cs.restartCount or 0
        if cs.lastState and cs.lastState.terminated:
            t = cs.lastState.terminated
            last_exit = t.reason if t.reason == "OOMKilled" else f"exit {t.exitCode}"
            message = t.message or message
        if cs.state and cs.state.terminated and cs.state.terminated.message:
            message = cs.state.terminated.message
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            waiting_reason = cs.state.waiting.reason
    phase = (status.phase if status else None) or "Pending"
    if pod.metadata.deletionTimestamp:
        state = "terminating"
    elif waiting_reason == "CrashLoopBackOff":
        state = "crashloop"
    elif ready:
        state = "ready"
    elif phase == "Running":
        state = "running"
    elif phase in ("Failed", "Succeeded"):
        state = "failed"
    else:
        state = "starting"
    node = pod.spec.nodeName if pod.spec else None
    return InstanceStatus(
        instance_id=pod.metadata.name,
        app=address,
        release=int(labels.get("yunzhou.io/release", "0") or 0),
        pid=None,
        port=0,
        state=state,  # type: ignore[arg-type]
        ready=ready,
        restarts=restarts,
        last_exit=last_exit,
        reason=f"node {node}, phase {phase}" + (f", {waiting_reason}" if waiting_reason else ""),
        cpu_seconds=0.0,
        memory_bytes=0,
        started_at=None,
        next_restart_at=None,
        # TODO(#14): the last probe result: the kubelet reports failing probes only as Events
        # ("Readiness probe failed: HTTP probe failed with statuscode: 503"), which this does not read yet
        stderr_tail=stderr_tail(message.splitlines()),
    )
