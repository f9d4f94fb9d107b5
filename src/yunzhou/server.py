"""The composition root: `yunzhou server` and `yunzhou up` wire the store, the use-cases and the API
together and run them. It is the only module that knows every layer."""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from yunzhou.api import create_app
from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.domain.limits import Limits
from yunzhou.local_platform import TlsSettings, tls_listen_address
from yunzhou.observe import AccessLogTailer, LogRecord, LogRetention, LogStore
from yunzhou.observe.alerts import AlertEvaluator, alert_interval
from yunzhou.observe.metrics.collect_instances import InstanceSample
from yunzhou.observe.metrics.collect_setup import ROUTER_ADMIN_FILE, MetricsWiring, publish_router_admin
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.gc import GcLoop, RetentionPolicy, gc_interval
from yunzhou.registry.resolve import Resolver, registry_address
from yunzhou.registry.server import TOKEN_PATH, RegistryProcess, RegistrySettings
from yunzhou.registry.signing import SigningKey, verify
from yunzhou.runtimes.local import InstanceStatus, LocalSupervisor, LogLine
from yunzhou.services import ADMIN_TOKEN_FILE, ControlPlane, ProbeResult
from yunzhou.services.image_pinning import ImagePinning
from yunzhou.services.image_signatures import SignedImages
from yunzhou.startup import Published, ServerLock, StartRefused, check_port, reachable_url
from yunzhou.store import Database, check_integrity, keep_private, sqlite_url, upgrade

if TYPE_CHECKING:
    from yunzhou.runtimes.kubernetes.render_tls import AcmeDirectory

log = logging.getLogger("yunzhou.server")


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 7070
    router_port: int = 8080
    database_url: str | None = None
    base_domain: str = "localhost"
    # uploaded kubeconfigs may name exec credential plugins, which then run on this host (docs/kubernetes.md)
    kubeconfig_exec: bool = False
    # request bodies and uploaded archives: YUNZHOU_MAX_* (domain/limits.py, docs/api.md#limits)
    limits: Limits = field(default_factory=Limits)
    # the managed registry (default) or an external one: YUNZHOU_REGISTRY_* (docs/images.md)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    # HTTPS on the local target: YUNZHOU_TLS_LISTEN, YUNZHOU_ACME_* (docs/tls.md, docs/config.md)
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, data_dir: Path | None = None, **overrides: object) -> ServerConfig:
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(data_dir or env.get("YUNZHOU_DATA_DIR", ".yunzhou")).resolve(),
            "api_host": env.get("YUNZHOU_API_HOST", "127.0.0.1"),
            "api_port": int(env.get("YUNZHOU_API_PORT", "7070")),
            "router_port": int(env.get("YUNZHOU_ROUTER_PORT", "8080")),
            "database_url": env.get("YUNZHOU_DATABASE_URL") or None,
            "base_domain": env.get("YUNZHOU_BASE_DOMAIN", "localhost"),
            "kubeconfig_exec": _flag(env, "YUNZHOU_KUBECONFIG_EXEC"),
            "limits": Limits.from_env(env),
            "registry": RegistrySettings.from_env(env),
            "tls": TlsSettings.from_env(env),
        }
        tls_listen = overrides.pop("tls_listen", None)  # --tls-listen
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        if tls_listen:
            tls_listen_address(str(tls_listen))
            config = replace(config, tls=replace(config.tls, listen=str(tls_listen)))
        return config


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name}={raw!r}: must be 1/true/yes or 0/false/no (empty: off)")


class Runner:
    """Everything `yunzhou server` runs besides the API: the local target and the reconcile worker."""

    def __init__(
        self,
        config: ServerConfig,
        cp: ControlPlane,
        log_store: LogStore,
        metrics: MetricsWiring | None = None,
    ) -> None:
        from yunzhou.local_platform import LocalPlatform
        from yunzhou.reconcile import AppController, Worker

        def capture(line: LogLine) -> None:
            log_store.append(LogRecord.from_captured(line))

        from yunzhou.reconcile.clusters import ClusterDirectory

        # DNS records by the environments' naming rules, custom-domain checks (reconcile/names.py); its
        # providers also answer ACME's dns-01 for the local target's certificates
        from yunzhou.reconcile.names import NamesReconciler, names_interval
        from yunzhou.runtimes.kubernetes.runtime import KubernetesRuntime

        assert cp.ctx.secret_box is not None
        self.names = NamesReconciler(
            cp.ctx.db, cp.ctx.secret_box.open, cp.ctx.clock, data_dir=config.data_dir,
            hosts_file=Path(os.environ.get("YUNZHOU_HOSTS_FILE", "/etc/hosts")), interval=names_interval(),
        )  # fmt: skip
        self.platform = LocalPlatform(
            config.data_dir,
            config.router_port,
            log_sink=capture,
            image_pull=functools.partial(
                pull_image, RegistryAccess(config.data_dir, config.registry), config.data_dir / "images"
            ),
            tls=config.tls,
            dns_zones=self.names.zone_providers,
        )
        self.platform.runtime.archive_limits = config.limits
        assert cp.ctx.secret_box is not None
        self.clusters = ClusterDirectory(cp.ctx.db, cp.ctx.secret_box, allow_exec=config.kubeconfig_exec)
        self.tailer = AccessLogTailer(self.platform.access_log, log_store)
        from yunzhou.reconcile.cluster_images import ClusterImageAccess
        from yunzhou.services.pull_credentials import PullCredentialService

        # the platform registry's host[:port] is the default a cluster's nodes pull from
        access = RegistryAccess(config.data_dir, config.registry)
        images = ClusterImageAccess(
            cp.ctx.db, PullCredentialService(cp.ctx, cp.ctx.secret_box), lambda: registry_address(access)
        )
        kubernetes = KubernetesRuntime(self.clusters.connect, images=images, acme=cluster_acme(config.tls))
        self.controller = AppController(
            cp.ctx.db,
            {"local": self.platform.runtime, "cluster": kubernetes},
            config.data_dir, cp.ctx.clock,
            base_domain=config.base_domain, secret_box=cp.ctx.secret_box,
        )  # fmt: skip
        cp.ctx.renderer = self.controller.render
        cp.ctx.runtime_logs = self.controller.logs
        controller = self.controller if metrics is None else metrics.own.timed(self.controller)
        self.worker = Worker(
            cp.ctx.db, {self.controller.kind: controller}, cp.ctx.clock, idle_poll=0.2,
            on_idle=self._ensure_router,
            concurrency=8,
            batch=32,
        )  # fmt: skip
        # build jobs (source → image → release, reconcile/builds.py): own worker, YUNZHOU_BUILD_CONCURRENCY
        from yunzhou.reconcile.build_image import image_store, registry_pusher, server_builder
        from yunzhou.reconcile.builds import BuildWorker, build_concurrency

        self.builds = BuildWorker(
            cp, server_builder(config.data_dir, config.limits),
            push=registry_pusher(image_store(config.data_dir), access.client, access.root),
            concurrency=build_concurrency(),
        )  # fmt: skip
        # stack builds (mmdebstrap: a minute or more each) have their own worker, so apps never wait on one
        from yunzhou.reconcile.stacks import LEASE_TTL, StackBuildController

        self.stack_builds = StackBuildController(config.data_dir, cp.ctx.clock)
        self.stack_worker = Worker(
            cp.ctx.db, {self.stack_builds.kind: self.stack_builds}, cp.ctx.clock,
            idle_poll=1.0, lease_ttl=LEASE_TTL, name="stack-builds",
        )  # fmt: skip
        self.cp = cp
        self._router_admin: tuple[str, dict[str, str]] | None = None  # what _publish_router_admin last wrote
        # the managed registry runs beside the local target, watched like the router (docs/images.md)
        self.registry: RegistryProcess | None = None
        self.registry_gc: GcLoop | None = None
        if config.registry.managed:
            realm = reachable_url(config.api_host, config.api_port) + TOKEN_PATH
            self.registry = RegistryProcess(config.data_dir, realm=realm, port=config.registry.port)
            self.registry_gc = GcLoop(
                self.registry,
                RegistryAccess(config.data_dir, config.registry).client,
                cp.registry.referenced_images,
                RetentionPolicy.from_env(),
                gc_interval(),
                busy=cp.registry.builds_running,
            )
        if metrics is not None:  # this process runs the local target: its router and instances are here
            metrics.attach_local(
                router_metrics=lambda: self.platform.router.metrics_text(),
                instances=lambda: instance_samples(self.platform.supervisor),
            )
            from yunzhou.domain.canary import engine_query

            # a canary analysis' custom query is evaluated on the same engine (docs/traffic.md)
            self.platform.runtime.metric_query = engine_query(metrics.engine)
            kubernetes.canaries.metric_query = engine_query(metrics.engine)  # canary steps on clusters
        # alert rules are evaluated where reconciliation runs: their healing actions need the reconciler
        self.alerts = (
            AlertEvaluator(
                cp,
                metrics.engine,
                interval=alert_interval(),
                external_url=f"http://{config.api_host}:{config.api_port}",
            )
            if metrics is not None
            else None
        )
        # the local autoscaler reads the same metrics and scales through the services (reconcile/autoscale.py)
        from yunzhou.reconcile.autoscale import AutoscaleLoop, autoscale_interval

        self.autoscaler = (
            AutoscaleLoop(cp, metrics.engine, interval=autoscale_interval()) if metrics is not None else None
        )
        # scale from zero: an app at zero wakes once the router holds a request for it (reconcile/wake.py)
        from yunzhou.reconcile.wake import WakeOnDemand

        self.wake = (
            WakeOnDemand(self.autoscaler, lambda: self.platform.router.activations(), woke=self.worker.wake)
            if self.autoscaler is not None
            else None
        )
        if self.autoscaler is not None and self.wake is not None:
            self.autoscaler.scaled_to_zero = self.wake.refresh
        # node autoscaling of the clusters YUNZHOU_NODE_AUTOSCALING names (reconcile/nodes.py)
        from yunzhou.reconcile.nodes import NodeAutoscaling, node_autoscaling_settings

        node_settings = node_autoscaling_settings(os.environ)
        self.nodes = NodeAutoscaling(cp, self.clusters.connect, node_settings) if node_settings else None
        # registered domains' registration expiry, looked up by RDAP (reconcile/domain_expiry.py)
        from yunzhou.reconcile.domain_expiry import DomainExpiryChecker
        from yunzhou.services.watched_domains import DomainWatchService

        watched = DomainWatchService(cp.ctx)
        self.domain_expiry = DomainExpiryChecker.from_env(watched, cp.ctx.clock, os.environ)

    def start(self) -> Runner:
        import fcntl

        from sqlalchemy import select

        from yunzhou.reconcile import APP_KIND
        from yunzhou.store.leases import enqueue
        from yunzhou.store.models import App

        # One process owns the local target's instances and router: a second one would duplicate them.
        self._lock = (self.platform.data_dir / "local-runtime.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(
                f"another yunzhou server or worker already runs the local target for {self.platform.data_dir}"
            ) from None
        try:
            self.platform.start()
            # a bridge that cannot be set up leaves the local target on host processes (said in the log)
            self.cp.ctx.local_runs_images = self.platform.containers is not None
            self._publish_router_admin()
            if self.registry is not None:
                self.registry.start()
                log.info("registry on %s (data %s)", self.registry.url, self.registry.storage)
            if self.registry_gc is not None:
                self.registry_gc.start()
            self.tailer.start()
            # after a restart every app is looked at again, so the machine converges back to desired state
            with self.cp.ctx.db.transaction() as s:
                for app_id in s.scalars(select(App.id)):
                    enqueue(s, APP_KIND, str(app_id), self.cp.ctx.clock())
            self.worker.start()
            self.builds.start()
            self.stack_worker.start()
            if self.alerts is not None:
                self.alerts.start()
            if self.autoscaler is not None:
                self.autoscaler.start()
            if self.wake is not None:
                self.wake.start()
            if self.nodes is not None:
                self.nodes.start()
            self.domain_expiry.start()
            self.names.start()
        except BaseException:  # a half-started runner (or Ctrl-C) leaves no router or instance behind
            self.stop()
            raise
        return self

    def _ensure_router(self) -> None:
        self.platform.ensure_router()
        self._publish_router_admin()
        if self.registry is not None:
            try:
                if self.registry.ensure():
                    log.error("the registry exited; started it again on %s", self.registry.url)
            except (PermanentError, TemporaryError) as exc:  # tried again when the worker is next idle
                log.error("the registry exited and could not be started again: %s", exc)

    def _publish_router_admin(self) -> None:
        """Say where the router's admin API is and its token, for a --no-runtime control plane's scrape."""
        router = self.platform.router
        published = (router.admin, router.admin_headers)
        if self._router_admin != published:
            publish_router_admin(self.platform.data_dir, *published)
            self._router_admin = published

    def stop(self) -> None:
        self.domain_expiry.stop()
        self.names.stop()
        if self.nodes is not None:
            self.nodes.stop()
        if self.wake is not None:
            self.wake.stop()
        if self.autoscaler is not None:
            self.autoscaler.stop()
        if self.alerts is not None:
            self.alerts.stop()
        self.stack_builds.cancel.set()  # a running mmdebstrap is stopped, its temporary files removed
        self.stack_worker.stop()
        self.builds.stop()  # running builds stop their steps and are marked failed
        self.worker.stop()
        if self.registry_gc is not None:
            self.registry_gc.stop()
        if self.registry is not None:
            self.registry.stop()
        self.platform.stop()
        (self.platform.data_dir / ROUTER_ADMIN_FILE).unlink(missing_ok=True)
        self.tailer.stop()
        self.clusters.close()
        self._lock.close()


def pull_image(access: RegistryAccess, images: Path, repository: str, digest: str) -> None:
    """A release's image into the server's image store (``images``), from the platform's registry."""
    from yunzhou.build.oci import ImageStore

    with access.client() as client:
        client.pull(repository, digest, ImageStore(images))


def instance_samples(supervisor: LocalSupervisor) -> list[InstanceSample]:
    """The local target's instances for the metrics scrape loop."""
    seen: list[InstanceStatus] = []

    def keep(now: list[InstanceStatus]) -> bool:
        seen.extend(now)
        return True

    # wait_for reads without side effects; statuses() would consume a stopped instance's last report
    supervisor.wait_for(keep, 0)
    return [
        InstanceSample(
            app=st.app,
            instance=st.instance_id,
            release=st.release,
            ready=st.ready,
            cpu_seconds=st.cpu_seconds,
            memory_bytes=st.memory_bytes,
            restarts=st.restarts,
            last_exit=st.last_exit,
            pid=st.pid,
            port=st.port,
            host=st.host,
        )
        for st in seen
    ]


def cluster_acme(tls: TlsSettings) -> AcmeDirectory | None:
    """The platform's ACME CA as a cluster's cert-manager is to use it (environments with tls acme), or None
    when none is configured (docs/kubernetes.md#https-with-cert-manager)."""
    from yunzhou.runtimes.kubernetes.render_tls import AcmeDirectory

    if tls.acme_directory is None:
        return None
    bundle = tls.acme_ca_bundle.read_text() if tls.acme_ca_bundle is not None else None
    return AcmeDirectory(tls.acme_directory, tls.acme_email or None, bundle)


def cluster_probe(
    name: str, kubeconfig: dict[str, Any], context: str | None, *, allow_exec: bool = False
) -> ProbeResult:
    """What `yunzhou cluster add` runs before storing anything: contact the API server."""
    from yunzhou.runtimes.kubernetes.cluster import probe

    info = probe(name, kubeconfig, context, allow_exec=allow_exec)
    return ProbeResult(server=info.server, version=info.version, context=info.context)


def image_pinning(resolver: Resolver) -> ImagePinning:
    """Deploy-time pinning: the platform registry, YUNZHOU_IMAGE_REGISTRIES, YUNZHOU_IMAGE_PINNING."""
    return ImagePinning.from_env(resolver, lambda: registry_address(resolver.access))


def signed_images(resolver: Resolver) -> SignedImages:
    """Signature checks for environments that require signed images: the platform registry, read with
    the server's access through the pinning resolver's kept client, against the key builds sign with
    (``<data dir>/registry/cosign.pub``)."""

    def check(repository: str, digest: str) -> None:
        key = SigningKey.load(resolver.access.root)
        verify(resolver.platform_client(), key.public, repository, digest)

    return SignedImages(check, lambda: registry_address(resolver.access))


def build_control_plane(config: ServerConfig) -> ControlPlane:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    tightened = keep_private(config.data_dir)  # 0700, and nothing in it for group/other
    if tightened:
        log.info("data dir %s: took group/other permissions off %d entries", config.data_dir, tightened)
    db = Database(config.database_url or sqlite_url(config.data_dir))
    log.info("state database: %s", check_integrity(db))  # a damaged file refuses to start, naming it
    upgrade(db.engine)
    cp = ControlPlane.create(
        db,
        config.data_dir,
        base_domain=config.base_domain,
        router_port=config.router_port,
        cluster_probe=functools.partial(cluster_probe, allow_exec=config.kubeconfig_exec),
        kubeconfig_exec=config.kubeconfig_exec,
    )
    cp.ctx.limits = config.limits
    cp.ctx.registry_images = RegistryAccess(config.data_dir, config.registry).images
    resolver = Resolver(RegistryAccess(config.data_dir, config.registry))  # one kept registry client
    cp.ctx.image_pinning = image_pinning(resolver)  # a deploy's Score image tags → digests
    cp.ctx.signed_images = signed_images(resolver)  # environments that require signed images
    token_file = cp.tokens.ensure_admin_token(config.data_dir)
    log.info("admin token file: %s (mode 0600)", token_file)
    return cp


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2"):  # one line per HTTP request (cluster calls included) is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)


def open_log_store(config: ServerConfig) -> LogStore:
    """Logs live in their own SQLite files (<data dir>/logs/), so logging never blocks control-plane
    writes; retention from YUNZHOU_LOGS_MAX_AGE / YUNZHOU_LOGS_MAX_BYTES."""
    return LogStore(config.data_dir / "logs", retention=LogRetention.from_env(os.environ))


def make_uvicorn(
    config: ServerConfig, cp: ControlPlane, log_store: LogStore, metrics: MetricsWiring | None = None
) -> uvicorn.Server:
    app = create_app(cp, own_metrics=metrics.own if metrics else None)
    if metrics is not None:
        metrics.install(app)
    app.state.log_store = log_store
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.api_host,
            port=config.api_port,
            log_level="info",
            access_log=False,
            lifespan="off",
        )
    )


def _quiet_stop_signals() -> None:
    # uvicorn drains on SIGTERM/SIGINT and then re-raises the signal to the handler that was there before
    # it started; make that one a no-op so a requested stop is a clean exit 0, not a death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def run_worker(data_dir: Path | None = None, router_port: int | None = None) -> None:
    """Reconcilers and the local target without the API (pair with `yunzhou server --no-runtime`)."""
    _configure_logging()
    config = ServerConfig.from_env(data_dir, router_port=router_port)
    cp = build_control_plane(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log_store = open_log_store(config)
    runner = Runner(config, cp, log_store).start()
    log.info("worker running (data dir %s); SIGTERM stops it", config.data_dir)
    try:
        stop.wait()
    finally:
        runner.stop()
        log_store.close()
        cp.ctx.db.dispose()


def run_server(
    data_dir: Path | None = None,
    api_host: str | None = None,
    api_port: int | None = None,
    router_port: int | None = None,
    runtime: bool = True,
    tls_listen: str | None = None,
) -> None:
    """Run the control plane in the foreground until SIGTERM/SIGINT (uvicorn drains and exits)."""
    _configure_logging()
    config = ServerConfig.from_env(
        data_dir, api_host=api_host, api_port=api_port, router_port=router_port, tls_listen=tls_listen
    )
    with _guarded_start(config, router=runtime) as url:
        cp = build_control_plane(config)
        log.info("Yunzhou API on %s (data dir %s)", url, config.data_dir)
        _quiet_stop_signals()
        log_store = open_log_store(config)
        metrics = MetricsWiring(config.data_dir, cp.ctx.db)
        runner = Runner(config, cp, log_store, metrics).start() if runtime else None
        if runner is None:  # a separate `yunzhou worker` runs the local target, as this environment says
            from yunzhou.local_platform import runs_containers

            cp.ctx.local_runs_images = runs_containers(os.environ)
        metrics.start()
        try:
            make_uvicorn(config, cp, log_store, metrics).run()
        finally:
            metrics.stop()
            if runner is not None:
                runner.stop()
            log_store.close()
            cp.ctx.db.dispose()


@contextmanager
def _guarded_start(config: ServerConfig, *, router: bool) -> Iterator[str]:
    """One server per data dir and free ports, checked before anything starts (each refused in one line);
    while it runs, the CLI finds it from any folder (client/discovery.py). Yields the server's URL."""
    url = reachable_url(config.api_host, config.api_port)
    lock = ServerLock(config.data_dir, url)
    try:
        check_port(config.api_host, config.api_port, "API and console", "--api-port", "YUNZHOU_API_PORT")
        if router:
            check_port("127.0.0.1", config.router_port, "router", "--router-port", "YUNZHOU_ROUTER_PORT")
            if config.tls.listen:
                host, port = tls_listen_address(config.tls.listen)
                if port:
                    check_port(host, port, "router HTTPS", "--tls-listen", "YUNZHOU_TLS_LISTEN")
        published = Published(url, config.api_port, config.data_dir)
        try:
            yield url
        finally:
            published.withdraw()
    finally:
        lock.release()


class BackgroundServer:
    """The control plane in a thread of this process: used by `yunzhou up` and shipped for tests."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.control_plane = build_control_plane(config)
        self.log_store = open_log_store(config)
        self.metrics = MetricsWiring(config.data_dir, self.control_plane.ctx.db)
        self.runner = Runner(config, self.control_plane, self.log_store, self.metrics)
        self._server = make_uvicorn(config, self.control_plane, self.log_store, self.metrics)
        self._thread = threading.Thread(target=self._server.run, name="yunzhou-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.api_host}:{self.config.api_port}"

    @property
    def admin_token(self) -> str:
        return (self.config.data_dir / ADMIN_TOKEN_FILE).read_text().strip()

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        self.runner.start()
        try:
            self.metrics.start()
            self._thread.start()
            deadline = threading.Event()
            waited = 0.0
            while not self._server.started:
                if not self._thread.is_alive():
                    raise RuntimeError(f"the API server could not start on {self.url} (is the port in use?)")
                if waited > timeout:
                    raise RuntimeError(f"the API server did not start within {timeout}s")
                deadline.wait(0.02)
                waited += 0.02
        except BaseException:  # nothing it started may outlive a failed start (or a Ctrl-C during it)
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self.metrics.stop()
        self.runner.stop()
        self.log_store.close()
        self.control_plane.ctx.db.dispose()


def run_up(
    data_dir: Path | None = None,
    api_host: str | None = None,
    api_port: int | None = None,
    router_port: int | None = None,
) -> None:
    """`make up`: run the control plane, seed the demo where it is absent, say where everything is, and
    wait for Ctrl-C — which stops everything this started, also while the demo is being deployed."""
    from yunzhou.demo import banner, seed_demo

    _configure_logging()
    config = ServerConfig.from_env(data_dir, api_host=api_host, api_port=api_port, router_port=router_port)
    with _guarded_start(config, router=True) as url:
        stopping = threading.Event()

        def interrupt(*_: object) -> None:
            if not stopping.is_set():  # a second Ctrl-C while stopping is ignored: cleanup must finish
                stopping.set()
                raise KeyboardInterrupt

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, interrupt)
        server: BackgroundServer | None = None
        try:
            server = BackgroundServer(config).start()
            apps = seed_demo(server.url, server.admin_token)
            print(banner(url, apps, config.data_dir / ADMIN_TOKEN_FILE), flush=True)
            stopping.wait()
        except KeyboardInterrupt:
            print("\nStopping…", flush=True)
        except RuntimeError as exc:  # the API could not start after all (a port taken since the check)
            raise StartRefused(str(exc)) from None
        finally:
            stopping.set()
            if server is not None:
                server.stop()
