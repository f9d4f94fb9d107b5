"""The local target's Runtime: plan a rollout over supervised processes and publish routes to the router.

One ``apply`` pass: observe the app's instances → plan (pure) → stop (leave the router first, drain, then
TERM) and start → publish the route table if it changed → report. With nothing to change it does nothing.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from yunzhou.domain.canary import CanaryRun, MetricQuery, ReleaseCounts, analysis_options, judge
from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.domain.limits import Limits
from yunzhou.domain.local_target import no_image_refusal
from yunzhou.domain.plan import Desired, Observed, plan_rollout
from yunzhou.domain.settings import RolloutStrategy
from yunzhou.runtimes.base import InstanceStatus
from yunzhou.runtimes.local.activation import route_activation
from yunzhou.runtimes.local.canary import release_counts
from yunzhou.runtimes.local.certificates import (
    CertificateKeeper,
    https_hosts,
    https_route_fields,
    not_secured,
)
from yunzhou.runtimes.local.containers import ContainerHost
from yunzhou.runtimes.local.isolation import Isolation
from yunzhou.runtimes.local.ports import free_port
from yunzhou.runtimes.local.render import Rendered, container_view, release_image, render
from yunzhou.runtimes.local.snapshot import ensure_snapshot
from yunzhou.runtimes.local.spec import Probe
from yunzhou.runtimes.local.supervisor import LocalSupervisor
from yunzhou.runtimes.local.traffic import (
    CALLER_TOKEN_ENV,
    caller_token,
    callers_table,
    load_token_key,
    not_routed_by_app,
    route_rank,
    router_policies,
)
from yunzhou.runtimes.protocol import AppIntent, AppObservation, RouteSpec

log = logging.getLogger("yunzhou.runtimes.local")

# pushes a snapshot; returns the router's answer ({"version", "applied", "dropped"}) or None
PublishRoutes = Callable[[dict[str, Any]], dict[str, Any] | None]
InFlight = Callable[[str], int | None]  # backend id → requests in flight at the router (None: unknown)
CRASHLOOP_FAILS_ROLLOUT_AFTER = 3  # restarts of a new instance before the rollout is reported failed
CONTAINER_PORT = 8080  # every container has an address of its own, so all listen on one PORT
ROOT = Path("/")  # a container's cwd on the host side: unused (the process runs in its image's workdir)
NOBODY = 65534  # a container's user when per-app users are off (YUNZHOU_ISOLATE_INSTANCES=0)


@dataclass
class _Draining:
    app_id: int
    deadline: float
    min_until: float


def _probe_view(probe: Probe | None) -> dict[str, Any] | None:
    if probe is None:
        return None
    return {k: v for k, v in vars(probe).items() if v not in ((), None)}


def _by_id(backend: dict[str, Any]) -> str:
    return str(backend["id"])


class LocalRuntime:
    def __init__(
        self,
        supervisor: LocalSupervisor,
        data_dir: Path,
        publish_routes: PublishRoutes,
        *,
        inflight: InFlight | None = None,
        router_metrics: Callable[[], str] | None = None,
        metric_query: MetricQuery | None = None,
        base_env: Mapping[str, str] | None = None,
        isolation: Isolation | None = None,
        containers: ContainerHost | None = None,
        container_env: Mapping[str, str] | None = None,
        certificates: CertificateKeeper | None = None,
        drain_min: float = 0.2,
        drain_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.supervisor = supervisor
        self.data_dir = data_dir
        self.publish_routes = publish_routes
        self.inflight = inflight
        self.base_env = dict(base_env or {})
        # None: instances run as this process's user, as in unit tests and when not root
        self.isolation = isolation or Isolation(False, "isolation not configured", data_dir)
        # set: a release with an image runs as containers (YUNZHOU_INSTANCE_MODE=container), which get
        # ``container_env`` (YUNZHOU_ROUTER at the bridge) instead of ``base_env`` (the host's PATH, …)
        self.containers = containers
        self.container_env = dict(container_env or {})
        # HTTPS hosts' certificates (certificates.py); None: this server has no HTTPS listener
        self.certificates = certificates
        self.drain_min = drain_min
        self.drain_max = drain_max
        self.clock = clock
        self._lock = threading.RLock()
        self._routes: dict[int, tuple[str, tuple[RouteSpec, ...]]] = {}  # app id → (address, routes)
        self._traffic: dict[int, tuple[str, Mapping[str, Any]]] = {}  # app id → (address, traffic policy)
        # app id → (address, the route's scale-to-zero activation or None)
        self._activation: dict[int, tuple[str, dict[str, Any] | None]] = {}
        self._tls: dict[int, str] = {}  # app id → its environment's TLS mode, for apps served over HTTPS
        self._https: dict[int, dict[str, Any]] = {}  # app id → its settings.https (redirect, HSTS)
        self._token_key = load_token_key(data_dir)
        self.router_metrics = router_metrics  # the router's /metrics text, for canary analysis
        # PromQL → value, for an analysis' custom query; the server sets it from its metrics engine
        self.metric_query = metric_query
        self.archive_limits = Limits()  # what a snapshot may unpack to; the server sets its own
        self._canaries: dict[int, CanaryRun] = {}  # app id → its canary run
        self._canary_split: dict[str, tuple[int, int]] = {}  # address → (canary release, weight %)
        self._preview_hosts: dict[str, list[str]] = {}  # address → hosts that reach only the new release
        self._app_of: dict[str, int] = {}  # instance id → app id
        self._draining: dict[str, _Draining] = {}
        self._version = 0
        self._published: dict[str, Any] | None = None
        self._needs_publish = True
        self._not_routed: dict[str, tuple[str, ...]] = {}  # address → its routes the router left out, why

    # ---- the pass
    def apply(self, intent: AppIntent) -> AppObservation:
        with self._lock:
            return self._apply(intent)

    def _apply(self, intent: AppIntent) -> AppObservation:
        actions = self._finish_drains()
        mine = self._statuses(intent.address)
        for s in mine:
            self._app_of.setdefault(s.instance_id, intent.app_id)
        observed = [
            Observed(
                s.instance_id,
                s.release,
                s.ready and s.instance_id not in self._draining,
                terminating=s.state in ("terminating", "stopped") or s.instance_id in self._draining,
                crashlooping=s.state == "crashloop",
                replace=s.instance_id in intent.replace_instances,
            )
            for s in mine
        ]
        strategy = intent.settings.get("rollout") or {}
        if strategy.get("strategy") in ("canary", "blue-green") and not intent.removing:
            canary = self._canary_pass(intent, mine, actions)
            if canary is not None:
                return canary
        else:
            self._end_canary(intent)
        surge, unavailable = RolloutStrategy(
            "rolling", strategy.get("maxSurge", 1), strategy.get("maxUnavailable", 0)
        ).resolve(intent.replicas)
        plan = plan_rollout(
            Desired(intent.release, intent.replicas, surge, unavailable, removing=intent.removing), observed
        )
        failure = ""
        rendered = None
        if plan.start and not intent.removing:
            try:
                rendered = self._render(intent)
            except PermanentError as exc:
                failure = exc.message
        for instance_id in plan.stop:
            self._begin_drain(intent.app_id, instance_id)
            actions += 1
        if rendered is not None:
            actions += self._start(intent, rendered, plan.start)
        if intent.removing:
            self._routes.pop(intent.app_id, None)
            self._traffic.pop(intent.app_id, None)
            self._activation.pop(intent.app_id, None)
            self._tls.pop(intent.app_id, None)
            self._https.pop(intent.app_id, None)
        else:
            self._set_tls(intent)
            self._routes[intent.app_id] = (intent.address, intent.routes)
            self._traffic[intent.app_id] = (intent.address, dict(intent.settings.get("traffic") or {}))
            self._activation[intent.app_id] = (intent.address, route_activation(intent.settings))
        # One read of the instances both for the route table and for what is reported: an instance that
        # became ready after the push must not be reported ready before the router routes to it.
        everything = self.supervisor.statuses()
        actions += self._publish(everything)
        mine = sorted((st for st in everything if st.app == intent.address), key=lambda st: st.instance_id)
        new = [
            s
            for s in mine
            if s.release == intent.release
            and s.instance_id not in self._draining
            and s.instance_id not in intent.replace_instances  # being restarted: not the new release's
        ]
        crashing = [
            s
            for s in new
            if s.state in ("crashloop", "failed") and s.restarts >= CRASHLOOP_FAILS_ROLLOUT_AFTER
        ]
        if crashing and not failure:
            s = crashing[0]
            failure = (
                f"CrashLoopBackOff: instance {s.instance_id} of release {intent.release} keeps exiting"
                f" ({s.last_exit}){'; ' + s.reason if s.reason else ''}"
            )
        ready = [s for s in mine if s.ready and s.instance_id not in self._draining]
        if intent.removing and not mine:
            self.isolation.forget_app(intent.address)  # its releases and homes go with it
        return AppObservation(
            instances=tuple(mine),
            ready=len(ready),
            ready_current=sum(1 for s in ready if s.release == intent.release),
            converged=plan.done and not intent.removing,
            gone=intent.removing and not mine,
            actions=actions,
            waiting_for=plan.waiting_for,
            failure=failure,
            not_routed=self._not_routed.get(intent.address, ()),
            not_secured=self._not_secured(intent),
        )

    def _end_canary(self, intent: AppIntent) -> None:
        self._canaries.pop(intent.app_id, None)
        self._clear_split(intent.address)

    def _clear_split(self, address: str) -> None:
        if self._canary_split.pop(address, None) is not None:
            self._needs_publish = True
        if self._preview_hosts.pop(address, None) is not None:
            self._needs_publish = True

    def _canary_pass(
        self, intent: AppIntent, mine: list[InstanceStatus], actions: int
    ) -> AppObservation | None:
        """One pass of a canary rollout; None when the plain rolling plan should run instead."""
        rollout = intent.settings.get("rollout") or {}
        blue_green = rollout.get("strategy") == "blue-green"
        steps = list(rollout.get("steps") or [])
        if blue_green:  # one step: the whole new release at 0%, checked (analysis) through the preview host
            analysis = rollout.get("analysis")
            steps = [{"weight": 0, "analysis": analysis} if analysis else {"weight": 0, "pause": "0s"}]
        live = [
            s
            for s in mine
            if s.instance_id not in self._draining and s.state not in ("terminating", "stopped")
        ]
        now = self.clock()
        run = self._canaries.get(intent.app_id)
        if run is None or run.canary != intent.release:
            older = [s.release for s in live if s.release != intent.release]
            if not older:
                self._end_canary(intent)
                return None  # first release, or already replaced: nothing to compare with
            run = CanaryRun(stable=max(older), canary=intent.release, step_started=now)
            run.baseline = self._counts(intent.address, run.canary) or run.baseline
            self._canaries[intent.app_id] = run
        command = rollout.get("command")  # from `yunzhou rollout promote|abort`
        if command == "promote" and not run.aborted:
            run.step = len(steps)
        elif command == "abort" and not run.aborted:
            run.aborted = f"rollout aborted by a user at step {min(run.step + 1, len(steps))}"
            log.warning("%s: %s; traffic back to release %d", intent.address, run.aborted, run.stable)
        if run.step >= len(steps):
            self._clear_split(intent.address)
            return None  # promoted: the rolling plan replaces the stable instances
        canaries = [s for s in live if s.release == run.canary]
        if run.aborted:
            want = 0
        else:
            weight = run.weight(steps)
            want = intent.replicas if blue_green else max(1, math.ceil(intent.replicas * weight / 100))
            ready = [s for s in canaries if s.ready]
            if len(ready) < want:
                run.step_started = now  # the step's clock starts once its instances serve
                run.baseline = self._counts(intent.address, run.canary) or run.baseline
                run.note = ""
            else:
                counts = self._counts(intent.address, run.canary)
                options = analysis_options(intent.settings)
                verdict, reason = judge(steps[run.step], run, now, counts, self.metric_query, **options)
                run.judged(verdict, reason)
                if verdict == "next":
                    run.step += 1
                    run.step_started = now
                    run.baseline = counts or run.baseline
                    if run.step >= len(steps):
                        self._clear_split(intent.address)
                        return None
                elif verdict == "abort":
                    run.aborted = f"canary aborted at step {run.step + 1} ({weight}%): {reason}"
                    log.warning("%s: %s; traffic back to release %d", intent.address, run.aborted, run.stable)
                    want = 0
        # While the run lasts, the new release's instances are "canary" in the router from the moment they
        # turn ready (even between this read and the publish below); weight only once some serve.
        weight = run.weight(steps) if want and any(s.ready for s in canaries) else 0
        split: tuple[int, int] | None = (run.canary, weight)
        if split != self._canary_split.get(intent.address):
            if split is None:
                self._canary_split.pop(intent.address, None)
            else:
                self._canary_split[intent.address] = split
            self._needs_publish = True
        for s in canaries[want:]:
            self._begin_drain(intent.app_id, s.instance_id)
            actions += 1
        if len(canaries) < want:
            try:
                rendered = self._render(intent)
            except PermanentError as exc:
                run.aborted = f"canary aborted: {exc.message}"
                rendered = None
            if rendered is not None:
                actions += self._start(intent, rendered, want - len(canaries))
        preview = rollout.get("previewHost")
        extra = (RouteSpec(str(preview)),) if preview and not run.aborted else ()
        if extra:
            if self._preview_hosts.get(intent.address) != [str(preview)]:
                self._preview_hosts[intent.address] = [str(preview)]
                self._needs_publish = True
        elif self._preview_hosts.pop(intent.address, None) is not None:
            self._needs_publish = True
        self._routes[intent.app_id] = (intent.address, intent.routes + extra)
        self._set_tls(intent)
        self._traffic[intent.app_id] = (intent.address, dict(intent.settings.get("traffic") or {}))
        self._activation[intent.app_id] = (intent.address, route_activation(intent.settings))
        everything = self.supervisor.statuses()
        actions += self._publish(everything)
        now_mine = sorted(
            (st for st in everything if st.app == intent.address), key=lambda st: st.instance_id
        )
        ready = [s for s in now_mine if s.ready and s.instance_id not in self._draining]
        where = (
            f"step {min(run.step + 1, len(steps))}/{len(steps)}: {run.weight(steps)}% to release {run.canary}"
        )
        return AppObservation(
            instances=tuple(now_mine),
            ready=len(ready),
            ready_current=sum(1 for s in ready if s.release == intent.release),
            converged=False,
            gone=False,
            actions=actions,
            waiting_for=f"canary {run.noted(where)}",
            failure=run.aborted,
            not_routed=self._not_routed.get(intent.address, ()),
            not_secured=self._not_secured(intent),
        )

    def _counts(self, address: str, release: int) -> ReleaseCounts | None:
        """The release's router counters; zeros when the router has none for it (no traffic yet), None
        when its metrics cannot be read."""
        if self.router_metrics is None:
            return None
        try:
            text = self.router_metrics()
        except Exception:  # the router not answering: judged as "no metrics" by the analysis
            log.warning("reading the router's metrics for canary analysis failed", exc_info=True)
            return None
        return release_counts(text, address).get(release) or ReleaseCounts()

    def _render(self, intent: AppIntent) -> Rendered:
        """A container when containers are on (the server's default); a release without an image then
        cannot run (PermanentError: the rollout fails saying so). A host process only without containers
        (YUNZHOU_INSTANCE_MODE=process, development)."""
        if self.containers is None:
            return render(intent, self.base_env)
        image = release_image(intent)
        if not image:
            written = [c.get("image") for c in dict(intent.score).get("containers", {}).values()]
            message = no_image_refusal(
                str(written[0]) if len(written) == 1 else None, intent.address.split("/")[0]
            )
            raise PermanentError(f"release {intent.release}: {message}")
        return render(intent, self.container_env, self.containers.image_config(image))

    def render(self, intent: AppIntent) -> list[dict[str, Any]]:
        r = self._render(intent)
        # Variables carrying a secret move to a "Secret" object (redacted unless an admin asks), as on
        # Kubernetes; argv items carrying one are always masked.
        hidden = intent.secret_values()
        base = self.container_env if r.container is not None else self.base_env
        env = {k: v for k, v in sorted(r.env.items()) if k not in base}
        secret_env = {k: v for k, v in env.items() if any(h in v for h in hidden)}
        objects: list[dict[str, Any]] = []
        if secret_env:
            objects.append({"kind": "Secret", "app": intent.address, "release": intent.release,
                            "data": secret_env})  # fmt: skip
        return [
            {
                "kind": "Container" if r.container is not None else "Process",
                "app": intent.address,
                "release": intent.release,
                "replicas": intent.replicas,
                **container_view(r),
                "argv": ["<secret>" if any(h in a for h in hidden) else a for a in r.argv],
                "environment": {k: "<from Secret>" if k in secret_env else v for k, v in env.items()},
                "readiness": _probe_view(r.readiness) or {"kind": "tcp"},
                "liveness": _probe_view(r.liveness),
                "memory_limit_bytes": r.memory_limit_bytes,
                "cpu_limit_millis": r.cpu_limit_millis,
                "routes": [{"host": x.host, "path": x.path} for x in intent.routes],
                "warnings": list(r.warnings),
            },
            *objects,
        ]

    def forget(self, app_id: int) -> int:
        with self._lock:
            actions = 0
            self._routes.pop(app_id, None)
            self._traffic.pop(app_id, None)
            self._activation.pop(app_id, None)
            self._tls.pop(app_id, None)
            self._https.pop(app_id, None)
            for instance_id, owner in list(self._app_of.items()):
                if owner == app_id and instance_id not in self._draining:
                    self._begin_drain(app_id, instance_id)
                    actions += 1
            return actions + self._publish()

    # ---- pieces
    def _statuses(self, address: str) -> list[InstanceStatus]:
        return sorted(
            (s for s in self.supervisor.statuses() if s.app == address), key=lambda s: s.instance_id
        )

    def _start(self, intent: AppIntent, rendered: Rendered, count: int) -> int:
        """Start ``count`` new instances of the intent's release, as the app's own user when isolated."""
        if count <= 0:
            return 0
        uid = self.isolation.uid_for(intent.address)
        token = {CALLER_TOKEN_ENV: caller_token(self._token_key, intent.address)}
        if rendered.container is not None:
            return self._start_containers(intent, rendered, count, uid, token)
        cwd = self._workdir(intent, uid)
        for _ in range(count):
            instance_id = self._new_instance_id(intent)
            spec = rendered.spec(instance_id, intent.address, intent.release, cwd, free_port(), token)
            if uid is not None:
                spec = replace(spec, user=uid, home=self.isolation.home(uid, instance_id))
            self.supervisor.ensure(spec)
            self._app_of[instance_id] = intent.app_id
        return count

    @staticmethod
    def _new_instance_id(intent: AppIntent) -> str:
        return f"{intent.address.replace('/', '-')}-r{intent.release}-{secrets.token_hex(3)}"

    def _start_containers(
        self, intent: AppIntent, rendered: Rendered, count: int, uid: int | None, token: dict[str, str]
    ) -> int:
        """Containers on the bridge: each at an address of its own, all listening on one PORT."""
        assert self.containers is not None
        if uid is not None:
            self.isolation.app_dir(uid)  # root:<uid> 0750, where its volumes go
        self._publish_names(self._route_hosts(intent))
        for _ in range(count):
            instance_id = self._new_instance_id(intent)
            address = self.containers.attach(instance_id, egress=intent.egress)
            user = NOBODY if uid is None else uid
            spec = rendered.spec(
                instance_id,
                intent.address,
                intent.release,
                ROOT,
                CONTAINER_PORT,
                token,
                host=address,
                user=user,
            )
            try:
                self.supervisor.ensure(spec)
            except Exception:
                self.containers.release(instance_id)
                raise
            self._app_of[instance_id] = intent.app_id
        return count

    def _route_hosts(self, intent: AppIntent | None = None) -> set[str]:
        hosts = {r.host for _, specs in self._routes.values() for r in specs}
        return hosts | ({r.host for r in intent.routes} if intent is not None else set())

    def _publish_names(self, hosts: set[str]) -> None:
        """Other apps' names resolve to the router inside instances (their /etc/hosts)."""
        if self.containers is not None:
            self.containers.set_names(hosts)

    def _workdir(self, intent: AppIntent, uid: int | None) -> Path:
        root = self.isolation.release_root(uid) if uid is not None else self.data_dir / "snapshots"
        if intent.artifact is None or intent.artifact_digest is None:
            empty = root / "empty"
            empty.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                os.chown(empty, 0, uid)
                empty.chmod(0o750)
            return empty
        if not intent.artifact.exists():
            raise PermanentError(
                f"artifact {intent.artifact_digest} is missing from {intent.artifact.parent}"
            )
        return ensure_snapshot(
            intent.artifact, intent.artifact_digest, root, group=uid, limits=self.archive_limits
        )

    def _begin_drain(self, app_id: int, instance_id: str) -> None:
        """Leave the router now; the process is stopped once in-flight requests finished (or drain_max)."""
        if instance_id in self._draining:
            return
        now = self.clock()
        self._draining[instance_id] = _Draining(app_id, now + self.drain_max, now + self.drain_min)
        self._needs_publish = True

    def _finish_drains(self) -> int:
        now = self.clock()
        finished = 0
        if not self._draining:
            return 0
        if self._publish_pending():
            return 0  # the router still routes to them
        for instance_id, d in list(self._draining.items()):
            busy = self.inflight(instance_id) if self.inflight else None
            if now < d.min_until or (busy and now < d.deadline):
                continue
            self.supervisor.stop(instance_id)
            del self._draining[instance_id]
            self._app_of.pop(instance_id, None)
            finished += 1
        return finished

    def _publish_pending(self) -> bool:
        try:
            return self._publish() < 0
        except TemporaryError:
            return True

    def snapshot(self, statuses: list[InstanceStatus] | None = None) -> dict[str, Any]:
        ready_by_app: dict[str, list[dict[str, Any]]] = {}
        statuses = self.supervisor.statuses() if statuses is None else statuses
        for s in statuses:
            if s.ready and s.instance_id not in self._draining:
                entry: dict[str, Any] = {
                    "id": s.instance_id,
                    "address": f"{s.host}:{s.port}",
                    "release": s.release,
                }
                split = self._canary_split.get(s.app)
                if split is not None and split[0] == s.release:
                    entry["track"] = "canary"
                ready_by_app.setdefault(s.app, []).append(entry)
        routes: list[dict[str, Any]] = []
        activation = {address: doc for address, doc in self._activation.values() if doc}
        ranked = sorted(
            (route_rank(i, app_id), address, r)
            for app_id, (address, specs) in self._routes.items()
            for i, r in enumerate(specs)
        )
        for _, address, r in ranked:
            routes.append(
                {
                    "host": r.host,
                    "path_prefix": r.path,
                    "app": address,
                    "backends": sorted(ready_by_app.get(address, []), key=_by_id),
                }
            )
            if address in activation:  # scaled to zero, the route stays: the router holds requests
                routes[-1]["activation"] = activation[address]
        body: dict[str, Any] = {"routes": routes}
        policies = router_policies(
            dict(self._traffic.values()),
            {app: weight for app, (_, weight) in self._canary_split.items()},
            self._preview_hosts,
        )
        if policies:
            body["policies"] = policies
        callers = callers_table(
            self._token_key, [s.app for s in statuses] + [a for a, _ in self._routes.values()]
        )
        if callers:
            body["callers"] = callers
        if self.certificates is not None:
            certificates = self.certificates.section()
            if certificates:
                body["certificates"] = certificates
                https = {
                    self._routes[i][0]: settings for i, settings in self._https.items() if i in self._routes
                }
                https_route_fields(routes, https, certificates)
        return body

    # ---- HTTPS
    def _set_tls(self, intent: AppIntent) -> None:
        if intent.tls in ("local", "acme"):
            self._tls[intent.app_id] = intent.tls
            self._https[intent.app_id] = dict(intent.settings.get("https") or {})
        else:
            self._tls.pop(intent.app_id, None)
            self._https.pop(intent.app_id, None)

    def _not_secured(self, intent: AppIntent) -> tuple[str, ...]:
        if intent.app_id not in self._tls:
            return ()
        return not_secured(self.certificates, [r.host for r in self._routes.get(intent.app_id, ("", ()))[1]])

    def certificates_changed(self) -> None:
        """A certificate was issued or renewed (certificates.py): push a snapshot that names its files."""
        with self._lock:
            self._publish()

    def _publish(self, statuses: list[InstanceStatus] | None = None) -> int:
        """Push the route table when it differs from what the router has; returns 1 if pushed."""
        if self.certificates is not None:  # issued in the keeper's thread, never in a pass
            self.certificates.want(https_hosts(self._tls, self._routes))
        body = self.snapshot(statuses)
        if body == self._published and not self._needs_publish:
            return 0
        self._version += 1
        try:
            answer = self.publish_routes({"version": self._version, **body})
        except TemporaryError:
            self._needs_publish = True
            raise
        not_routed = not_routed_by_app(body["routes"], (answer or {}).get("dropped"))
        for app, messages in sorted(not_routed.items()):
            if self._not_routed.get(app) != messages:
                log.warning("the router left out routes of %s: %s", app, "; ".join(messages))
        self._not_routed = not_routed
        self._publish_names(self._route_hosts())
        self._published = body
        self._needs_publish = False
        return 1

    def publish_ready(self) -> None:
        """Push the route table now (readiness.py: an instance became ready or unready between passes)."""
        with self._lock:
            self._publish(self.supervisor.peek())

    def republish(self) -> None:
        """After a router restart: send the current table again."""
        with self._lock:
            self._needs_publish = True
            self._publish()
