"""The router process: listeners, the active routing table, housekeeping and graceful shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yunzhou.domain.errors import Conflict
from yunzhou.router.accesslog import AccessLog
from yunzhou.router.admin import AdminConnection
from yunzhou.router.config import EMPTY_SNAPSHOT, Backend, RoutingTable, Snapshot, parse_snapshot
from yunzhou.router.hold import HeldRequests
from yunzhou.router.http import RequestIds
from yunzhou.router.metrics import RouterMetrics
from yunzhou.router.policy import AppPolicy, PolicyState
from yunzhou.router.proxy import ClientConnection, TLSClientConnection
from yunzhou.router.tls import NO_CERTIFICATES, listener_context, load_certificates
from yunzhou.router.upstream import Pools

if TYPE_CHECKING:
    from yunzhou.router.exchange import Exchange

log = logging.getLogger("yunzhou.router")
_CONNECT_LOG_EVERY_S = 5.0


@dataclass(frozen=True)
class Settings:
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    # more proxy addresses (the container bridge's gateway, where instances reach the router); port 0 → the
    # port ``listen`` got
    also_listen: tuple[tuple[str, int], ...] = ()
    admin: tuple[str, int] = ("127.0.0.1", 8081)
    tls_listen: tuple[str, int] | None = None  # HTTPS (TLS terminated here, certificates by SNI)
    config_file: Path | None = None
    access_log: str | None = None
    ready_file: Path | None = None
    admin_token: str | None = None  # every admin request but /healthz needs it; None: --insecure-admin
    upstream_timeout: float = 60.0  # no response byte from the backend for this long → 504
    connect_timeout: float = 5.0  # per backend; a timed-out connect falls through to the next one
    client_idle_timeout: float = 60.0  # keep-alive client connections with no request are closed
    header_timeout: float = 10.0  # a request head (line and headers) must arrive whole within this → 408
    body_timeout: float = 30.0  # no request body byte for this long while the router reads one → 408
    max_connections_per_client: int = 256  # open connections from one client address; more → 429
    pool_idle_timeout: float = 4.0  # below common backend keep-alive timeouts (uvicorn: 5 s)
    grace: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    tunnel_idle_timeout: float = 300.0  # an upgraded connection with no byte either way for this long closes
    acme_challenges: Path | None = None  # ACME HTTP-01 key authorizations, one file per token


class Router:
    """State shared by every connection of one router process."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.log = log
        self.table = RoutingTable(EMPTY_SNAPSHOT)
        self.certificates = NO_CERTIFICATES  # read by every TLS handshake (router/tls.py)
        self.tls_port = 0  # the port the TLS listener got; 0: no TLS listener (no HTTPS redirects)
        self.policy_states: dict[str, PolicyState] = {}
        self.configured = False
        self.pools = Pools(self)
        self.metrics = RouterMetrics()
        self.request_ids = RequestIds()
        self.held = HeldRequests(loop)  # requests waiting for an app scaled to zero
        self.access_log = AccessLog(settings.access_log, loop) if settings.access_log else None
        self.clients: set[ClientConnection] = set()
        self.connections_of: dict[str, int] = {}  # client address → its open connections
        self.draining = False
        self.drained = asyncio.Event()
        self._connect_logged: dict[str, float] = {}

    # configuration ---------------------------------------------------------------------------
    def apply_config(self, doc: Any) -> bool:
        """Validate and swap in a snapshot. True when it changed the active one, False when idempotent.

        Raises ``UserError`` (malformed) or ``Conflict`` (stale or reused version); the active snapshot
        stays as it was in both cases. Bad routes are dropped, logged and kept in ``snapshot.dropped``.
        """
        active = self.table.snapshot
        snapshot = parse_snapshot(doc, active if self.configured else None)
        if self.configured and snapshot.version < active.version:
            raise Conflict(
                f"config version {snapshot.version} is older than the active version {active.version}"
            )
        if self.configured and snapshot.version == active.version:
            if snapshot.to_json() == active.to_json() and snapshot.dropped == active.dropped:
                return False
            raise Conflict(
                f"config version {snapshot.version} is already active with different content; "
                "bump the version for a new snapshot"
            )
        certificates = load_certificates(
            snapshot.certificates, self.certificates
        )  # may refuse: nothing swapped
        # One assignment: a request routes with either the old table or the new one, never a mix.
        self.table = RoutingTable(snapshot, self._compile_policies(snapshot))
        self.certificates = certificates  # the next handshake uses these; open connections keep theirs
        self.configured = True
        self.pools.keep_only(snapshot.backend_addresses())
        self.held.release(self.table)
        self.metrics.config_version = snapshot.version
        self.metrics.config_applied += 1
        self.metrics.routes_dropped = len(snapshot.dropped)
        for dropped in snapshot.dropped:
            log.warning(
                "config version %d: routes[%d] (app %s) not applied: %s",
                snapshot.version,
                dropped.index,
                dropped.app,
                dropped.reason,
            )
        backends = sum(len(r.backends) for r in snapshot.routes)
        log.info(
            "config version %d applied: %d routes, %d backends, %d certificates",
            snapshot.version,
            len(snapshot.routes),
            backends,
            len(certificates),
        )
        return True

    def _compile_policies(self, snapshot: Snapshot) -> dict[str, AppPolicy]:
        """Compile each app's policy, keeping its state (buckets, ejections, queue) while it is unchanged."""
        now = self.loop.time()
        compiled: dict[str, AppPolicy] = {}
        states: dict[str, PolicyState] = {}
        for app, spec in snapshot.policies.items():
            traffic_doc = spec.doc.get("traffic")
            state = self.policy_states.get(app)
            if state is None or state.doc != traffic_doc:
                state = PolicyState(doc=traffic_doc)
            states[app] = state
            compiled[app] = AppPolicy(app, spec.traffic, spec.split, spec.preview_hosts, state, now)
        for app, old in self.policy_states.items():
            if states.get(app) is not old:
                while old.pending:  # requests queued under a policy that is gone go ahead without it
                    waiting = old.pending.popleft()
                    if not waiting.done:
                        self.loop.call_soon(waiting.dequeued)
        self.policy_states = states
        return compiled

    def caller_of(self, token: bytes) -> str | None:
        """The app a caller token belongs to (tokens are known by their sha256), or None."""
        return self.table.snapshot.callers.get(hashlib.sha256(token).hexdigest())

    # connection bookkeeping -----------------------------------------------------------------
    def client_opened(self, client: ClientConnection) -> bool:
        """Count a new connection; False (not counted) when its address already has as many as allowed."""
        count = self.connections_of.get(client.peer, 0)
        if count >= self.settings.max_connections_per_client:
            self.metrics.connections_refused += 1
            return False
        self.connections_of[client.peer] = count + 1
        self.clients.add(client)
        self.metrics.client_connections += 1
        return True

    def client_closed(self, client: ClientConnection) -> None:
        if client not in self.clients:
            return  # refused at connect: never counted
        self.clients.discard(client)
        self.metrics.client_connections -= 1
        count = self.connections_of.pop(client.peer, 1) - 1
        if count:
            self.connections_of[client.peer] = count
        if self.draining and not self.clients:
            self.drained.set()

    def tunnel_opened(self, exchange: Exchange) -> None:
        app = exchange.app or "-"
        self.metrics.upgrade_outcome(app, "switched")
        self.metrics.tunnel_opened(app)

    def _upgrade_finished(self, exchange: Exchange, duration: float) -> float:
        """Count how an upgrade request ended; the latency to record: a tunnel's is its handshake's."""
        app = exchange.app or "-"
        if exchange.switched:
            self.metrics.tunnel_closed(app, exchange.tunnel_end or "client")
            return exchange.switched_at - exchange.started_at
        if exchange.backend_answered:
            outcome = "declined"  # the backend answered without switching; relayed as it was
        elif exchange.status == 499:
            outcome = "abandoned"
        else:
            outcome = "refused" if exchange.status < 500 else "failed"
        self.metrics.upgrade_outcome(app, outcome)
        return duration

    def exchange_finished(self, exchange: Exchange) -> None:
        duration = time.perf_counter() - exchange.started_at
        latency = duration if exchange.upgrade is None else self._upgrade_finished(exchange, duration)
        backend = exchange.backend
        release = backend.release if backend is not None else None
        if exchange.app is not None:
            self.metrics.request_finished(exchange.app, release, exchange.status, latency)
        if self.access_log is not None:  # a tuple now, the line when the batch is written (accesslog.py)
            self.access_log.add(
                (
                    time.time(),
                    exchange.app,
                    backend.id if backend is not None else None,
                    release,
                    exchange.method,
                    exchange.host,
                    exchange.path,
                    exchange.status,
                    exchange.bytes_sent,
                    duration,
                    exchange.request_id,
                )
            )

    def connect_failed(self, app: str, backend: Backend, exc: BaseException) -> None:
        self.metrics.connect_failed(app, backend.id)
        now = self.loop.time()
        if now - self._connect_logged.get(backend.id, -1e9) >= _CONNECT_LOG_EVERY_S:
            self._connect_logged[backend.id] = now
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            log.warning(
                "connect to backend %s (%s) of %s failed: %s", backend.id, backend.address, app, reason
            )

    def log_upstream_error(self, exchange: Exchange, status: int, message: str) -> None:
        log.warning(
            "%d for %s %s (request %s): %s",
            status,
            exchange.host,
            exchange.path,
            exchange.request_id,
            message,
        )

    def protocol_error(self, status: int, message: str) -> None:
        log.debug("refused a client request with %d: %s", status, message)

    # housekeeping and shutdown ----------------------------------------------------------------
    def sweep(self) -> None:
        """Once a tick: close idle clients, answer slow heads and stalled bodies 408, close idle pools.

        Deadlines are checked here rather than with a timer per request, so the request path stays as it
        was; a deadline is met to within one tick (``sweep_every``).
        """
        now = self.loop.time()
        settings = self.settings
        idle_before = now - settings.client_idle_timeout
        head_before = now - settings.header_timeout
        body_before = now - settings.body_timeout
        for client in list(self.clients):
            if client.head_started and client.head_started < head_before and client.active is None:
                self.metrics.header_timeouts += 1
                client.reject(408, f"the request head did not arrive within {settings.header_timeout:g} s")
            elif client.parsing is not None and not client.read_pauses and client.last_activity < body_before:
                self.metrics.body_timeouts += 1
                client.reject(408, f"no request body received for {settings.body_timeout:g} s")
            elif client.is_idle() and client.last_activity < idle_before:
                client.close()
        self.pools.close_idle(older_than=now - settings.pool_idle_timeout)

    def begin_drain(self) -> None:
        self.draining = True
        self.held.abandon_all("the router is shutting down")  # no instance will start for them here
        for client in list(self.clients):
            if client.is_idle():
                client.close()
        self.pools.close_idle()
        if not self.clients:
            self.drained.set()

    def abort_remaining(self) -> None:
        for client in list(self.clients):
            client.abort()


def _write_ready_file(
    path: Path, listen: tuple[str, int], admin: tuple[str, int], tls_listen: tuple[str, int] | None
) -> None:
    def address(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    doc = {"pid": os.getpid(), "listen": address(*listen), "admin": address(*admin)}
    if tls_listen is not None:
        doc["tls_listen"] = address(*tls_listen)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written file


async def serve(settings: Settings) -> int:
    """Run the router until SIGTERM/SIGINT; returns the process exit code."""
    loop = asyncio.get_running_loop()
    router = Router(settings, loop)
    if settings.config_file is not None:
        doc = json.loads(settings.config_file.read_text(encoding="utf-8"))
        router.apply_config(doc)
    proxy_server = await loop.create_server(
        lambda: ClientConnection(router), settings.listen[0], settings.listen[1], backlog=2048
    )
    admin_server = await loop.create_server(
        lambda: AdminConnection(router), settings.admin[0], settings.admin[1]
    )
    listen = proxy_server.sockets[0].getsockname()[:2]
    extra_servers = [
        await loop.create_server(lambda: ClientConnection(router), host, port or listen[1], backlog=2048)
        for host, port in settings.also_listen
    ]
    tls_listen = None
    if settings.tls_listen is not None:
        tls_server = await loop.create_server(
            lambda: TLSClientConnection(router),
            settings.tls_listen[0],
            settings.tls_listen[1],
            backlog=2048,
            ssl=listener_context(lambda: router.certificates, router.metrics.tls_name_unknown),
            ssl_handshake_timeout=settings.header_timeout,
        )
        tls_listen = tls_server.sockets[0].getsockname()[:2]
        router.tls_port = tls_listen[1]
        extra_servers.append(tls_server)
        log.info("listening for HTTPS on %s:%d", tls_listen[0], tls_listen[1])
    admin = admin_server.sockets[0].getsockname()[:2]
    log.info("listening on %s:%d, admin on %s:%d", listen[0], listen[1], admin[0], admin[1])
    if settings.ready_file is not None:
        _write_ready_file(settings.ready_file, listen, admin, tls_listen)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    timeouts = (
        settings.client_idle_timeout,
        settings.pool_idle_timeout,
        settings.header_timeout,
        settings.body_timeout,
    )
    sweep_every = min(1.0, *(t / 4 for t in timeouts))

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(sweep_every)
            router.sweep()

    sweeper = loop.create_task(housekeeping())
    await stop.wait()
    started = time.monotonic()
    log.info("stopping: no new connections; waiting up to %g s for in-flight requests", settings.grace)
    proxy_server.close()
    for extra in extra_servers:
        extra.close()
    router.begin_drain()
    try:
        await asyncio.wait_for(router.drained.wait(), settings.grace)
    except TimeoutError:
        log.warning("grace period over: closing %d connections with requests in flight", len(router.clients))
        router.abort_remaining()
    sweeper.cancel()
    admin_server.close()
    if router.access_log is not None:
        router.access_log.close()
    log.info("stopped after %.3f s", time.monotonic() - started)
    return 0
