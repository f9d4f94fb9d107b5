"""The local target assembled: supervisor + router process + LocalRuntime, with crash-safe start-up.

Part of the composition root (with yunzhou.server): it knows both the runtime and the router.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from yunzhou.domain.errors import TemporaryError, YunzhouError
from yunzhou.envnumbers import number_from_env
from yunzhou.names.dns import DnsProvider
from yunzhou.names.tls.issuers import CertificateIssuer
from yunzhou.names.tls.local_ca import LEAF_LIFETIME, LocalCA, LocalCaIssuer
from yunzhou.router import RouterProcess
from yunzhou.runtimes.local import LocalSupervisor, LogLine
from yunzhou.runtimes.local.certificates import CertificateKeeper
from yunzhou.runtimes.local.containers import ContainerHost, instance_mode
from yunzhou.runtimes.local.isolation import Isolation
from yunzhou.runtimes.local.ports import free_port
from yunzhou.runtimes.local.readiness import ReadinessFollower
from yunzhou.runtimes.local.runtime import LocalRuntime

log = logging.getLogger("yunzhou.local")


class RouterClientLimits(NamedTuple):
    """The router's guards against slow and greedy clients (docs/router.md), settable per server."""

    header_timeout: float
    body_timeout: float
    max_connections_per_client: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RouterClientLimits:
        """From ``YUNZHOU_ROUTER_HEADER_TIMEOUT`` (s, default 10), ``YUNZHOU_ROUTER_BODY_TIMEOUT`` (s, 30)
        and ``YUNZHOU_ROUTER_MAX_CONNECTIONS_PER_CLIENT`` (256); a bad value stops start-up with a message
        naming the variable and the range allowed."""

        def number(name: str, default: float, low: float, high: float, unit: str) -> float:
            return number_from_env(name, default, low, high, unit=unit, environ=environ)

        return cls(
            number("YUNZHOU_ROUTER_HEADER_TIMEOUT", 10.0, 0.5, 600.0, "seconds"),
            number("YUNZHOU_ROUTER_BODY_TIMEOUT", 30.0, 0.5, 3600.0, "seconds"),
            int(number("YUNZHOU_ROUTER_MAX_CONNECTIONS_PER_CLIENT", 256, 1, 1_000_000, "connections")),
        )


@dataclass(frozen=True)
class TlsSettings:
    """HTTPS on the local target (docs/tls.md#https-on-the-local-target): the router's HTTPS listener and
    where certificates come from; an environment's ``tls`` (local/acme) picks the issuer per app."""

    listen: str | None = None  # YUNZHOU_TLS_LISTEN / --tls-listen, host:port; None: no HTTPS
    acme_directory: str | None = None  # YUNZHOU_ACME_DIRECTORY: the ACME CA for environments with tls acme
    acme_email: str = ""  # YUNZHOU_ACME_EMAIL: the ACME account's contact
    acme_ca_bundle: Path | None = None  # YUNZHOU_ACME_CA_BUNDLE: trust for the directory's HTTPS
    local_lifetime: float = LEAF_LIFETIME.total_seconds()  # YUNZHOU_TLS_LOCAL_LIFETIME (s), the local CA's
    # YUNZHOU_ACME_CHALLENGE: http-01 (answered by the router) or dns-01 (a TXT record through the DNS
    # provider that holds the host's zone, docs/names.md)
    acme_challenge: str = "http-01"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TlsSettings:
        """A bad value stops start-up with a message naming the variable and what is allowed."""
        listen = environ.get("YUNZHOU_TLS_LISTEN", "").strip() or None
        if listen is not None:
            tls_listen_address(listen)
        directory = environ.get("YUNZHOU_ACME_DIRECTORY", "").strip() or None
        if directory is not None and not directory.startswith("https://"):
            raise ValueError(
                f"YUNZHOU_ACME_DIRECTORY={directory!r}: must be the https:// URL of an ACME directory"
            )
        bundle = environ.get("YUNZHOU_ACME_CA_BUNDLE", "").strip()
        if bundle and not Path(bundle).is_file():
            raise ValueError(f"YUNZHOU_ACME_CA_BUNDLE={bundle!r}: must be a PEM file of CA certificates")
        lifetime = number_from_env(
            "YUNZHOU_TLS_LOCAL_LIFETIME", LEAF_LIFETIME.total_seconds(), 10, 397 * 86400,
            unit="seconds", environ=environ,
        )  # fmt: skip
        challenge = environ.get("YUNZHOU_ACME_CHALLENGE", "").strip() or "http-01"
        if challenge not in ("http-01", "dns-01"):
            raise ValueError(f"YUNZHOU_ACME_CHALLENGE={challenge!r}: must be http-01 or dns-01")
        return cls(
            listen, directory, environ.get("YUNZHOU_ACME_EMAIL", "").strip(),
            Path(bundle).resolve() if bundle else None, lifetime, challenge,
        )  # fmt: skip


def tls_listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8443`` for IPv6) → (host, port); ValueError naming YUNZHOU_TLS_LISTEN."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"YUNZHOU_TLS_LISTEN / --tls-listen {value!r}: must be host:port (127.0.0.1:8443)")
    return host, int(port)


_BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def _kill_leftover_router(pid_file: Path) -> None:
    """A router left behind by a control plane that was killed -9 still holds the port: end it."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"yunzhou.router" in cmdline:
        log.warning("stopping router pid %d left by a previous run", pid)
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def runs_containers(environ: Mapping[str, str]) -> bool:
    """Whether a local target started with ``environ`` runs instances as containers (the default, as
    root); for an API server whose local target is a separate ``yunzhou worker``."""
    return instance_mode(environ) == "container" and os.geteuid() == 0


def _container_host(
    data_dir: Path, isolation: Isolation, pull: Callable[[str, str], object] | None
) -> tuple[ContainerHost | None, str]:
    """Instances as containers (the default), or why not: YUNZHOU_INSTANCE_MODE=process, or not root."""
    mode = instance_mode(os.environ)
    if mode == "process":
        return None, "host processes (YUNZHOU_INSTANCE_MODE=process: development mode)"
    if not isolation.enabled or isolation.root is None:
        return None, f"host processes: containers need per-app users ({isolation.note})"
    from yunzhou.build.oci import ImageStore
    from yunzhou.sandbox.rootfs import LayerCache

    root = isolation.root
    store = ImageStore(data_dir / "images")
    host = ContainerHost(root, store, LayerCache(root / "layers"), scope=root.name, pull=pull)
    return host, "releases with an image run as runc containers; releases without one as host processes"


class LocalPlatform:
    def __init__(
        self,
        data_dir: Path,
        router_port: int,
        *,
        log_sink: Callable[[LogLine], None] | None = None,
        router_host: str = "127.0.0.1",
        image_pull: Callable[[str, str], object] | None = None,
        tls: TlsSettings | None = None,
        dns_zones: Callable[[], Sequence[tuple[str, DnsProvider]]] | None = None,
    ) -> None:
        """``image_pull(repository, digest)``: fetch a release's image missing from the server's image store
        (``<data dir>/images``) from the platform's registry. ``tls``: HTTPS (off without a listener).
        ``dns_zones()``: the (zone, provider) pairs ACME's dns-01 writes its TXT records through."""
        self.data_dir = data_dir
        self.dns_zones = dns_zones or (lambda: ())
        self.router_listen = f"{router_host}:{router_port}"
        self.tls = tls or TlsSettings()
        self.acme_challenges = data_dir / "acme-challenges" if self.tls.acme_directory else None
        # certificates of the apps whose environment has tls local/acme; none without an HTTPS listener
        self.certificates = (
            CertificateKeeper(
                data_dir / "tls" / "hosts", self._issuers(), lambda: self.runtime.certificates_changed()
            )
            if self.tls.listen
            else None
        )
        # Each app runs as a user of its own (when root; YUNZHOU_ISOLATE_INSTANCES=0 turns it off)
        self.isolation = Isolation.from_env(data_dir, os.environ)
        # Releases with an image run as containers unless YUNZHOU_INSTANCE_MODE=process (development)
        self.containers, self.mode_note = _container_host(data_dir, self.isolation, image_pull)
        self.supervisor = LocalSupervisor(
            data_dir / "instances", log_sink=log_sink, containers=self.containers
        )
        self.router = RouterProcess(log_file=data_dir / "router.log")
        self.router_pid_file = data_dir / "router.pid"
        self.access_log = data_dir / "router-access.log"
        base_env = {k: v for k, v in os.environ.items() if k in _BASE_ENV_KEYS}
        # How an instance reaches other apps by internal name: through the router, with their Host.
        base_env["YUNZHOU_ROUTER"] = self.router_listen
        self.runtime = LocalRuntime(
            self.supervisor,
            data_dir,
            self._push,
            base_env=base_env,
            isolation=self.isolation,
            containers=self.containers,
            inflight=self._inflight,
            router_metrics=self.router.metrics_text,  # canary analysis reads per-release counters
            certificates=self.certificates,
        )
        self.readiness = ReadinessFollower(self.supervisor, self.runtime.publish_ready)

    def _issuers(self) -> dict[str, CertificateIssuer]:
        """The local CA (``<data dir>/tls/ca``) always; the ACME CA when YUNZHOU_ACME_DIRECTORY names one."""
        lifetime = dt.timedelta(seconds=self.tls.local_lifetime)
        issuers: dict[str, CertificateIssuer] = {
            "local": LocalCaIssuer(LocalCA.open(self.data_dir / "tls" / "ca"), lifetime)
        }
        if self.tls.acme_directory and self.acme_challenges is not None:
            from yunzhou.names.tls.acme import AcmeIssuer, AcmeSettings, DirectoryResponder, Dns01ByZone

            dns01 = self.tls.acme_challenge == "dns-01"
            settings = AcmeSettings(
                self.tls.acme_directory, self.tls.acme_email, self.tls.acme_ca_bundle,
                self.data_dir / "tls" / "acme" / "account.key", "dns-01" if dns01 else "http-01",
            )  # fmt: skip
            issuers["acme"] = AcmeIssuer(
                settings,
                http01=DirectoryResponder(self.acme_challenges),
                dns01=Dns01ByZone(self.dns_zones) if dns01 else None,
            )
        return issuers

    def _push(self, snapshot: dict[str, object]) -> dict[str, object]:
        return self.router.push_config(snapshot)

    def _inflight(self, backend_id: str) -> int | None:
        """Requests the router still has in flight to an instance that left the route table."""
        try:
            return self.router.in_flight().get(backend_id, 0)
        except TemporaryError:
            return None  # the router is not answering: drain by time

    def start(self) -> LocalPlatform:
        killed = self.supervisor.cleanup_orphans()
        if killed:
            log.warning("stopped %d instance process(es) left by a previous run", len(killed))
        _kill_leftover_router(self.router_pid_file)
        self.isolation.remove_all()  # homes a kill -9 left behind; releases are unpacked again as needed
        (log.info if self.isolation.enabled else log.warning)("instance isolation: %s", self.isolation.note)
        if self.containers is not None:
            try:
                self.containers.network.ensure()  # the bridge: the router listens on its gateway address too
            except (YunzhouError, OSError) as exc:  # no bridge, no iptables: still serve, as processes
                message = exc.message if isinstance(exc, YunzhouError) else str(exc)
                self.mode_note = f"host processes: the container bridge cannot be set up ({message})"
                self.containers = self.supervisor.containers = self.runtime.containers = None
        (log.info if self.containers is not None else log.warning)("instance mode: %s", self.mode_note)
        self.supervisor.start()
        self._start_router()
        log.info("router on http://%s (admin %s)", self.router.listen, self.router.admin)
        if self.router.tls_listen:
            log.info("router HTTPS on %s (certificates in %s)", self.router.tls_listen, self.data_dir / "tls")
        self.readiness.start()  # a newly ready instance is routed at once, not at its app's next pass
        if self.certificates is not None:
            self.certificates.start()
        return self

    def ensure_router(self) -> None:
        """Called when the worker is idle: a router that died is started again and given the routes."""
        if self.router.running():
            return
        log.error("the router exited; starting it again")
        self.router = RouterProcess(log_file=self.data_dir / "router.log")
        self._start_router()
        self.runtime.republish()

    def _start_router(self) -> None:
        limits = RouterClientLimits.from_env()
        admin = f"127.0.0.1:{free_port()}"
        gateway = self.containers.gateway if self.containers is not None else None
        self.router.start(
            self.router_listen,
            admin,
            str(self.access_log),
            header_timeout=limits.header_timeout,
            body_timeout=limits.body_timeout,
            max_connections_per_client=limits.max_connections_per_client,
            also_listen=(f"{gateway}:0",) if gateway else (),  # 0: the same port as on loopback
            tls_listen=self.tls.listen,
            acme_challenges=self.acme_challenges,  # HTTP-01 answers the ACME issuer writes
        )
        self.router_pid_file.write_text(str(self.router.pid))
        if self.containers is not None:
            port = int(self.router.listen.rpartition(":")[2])
            self.containers.network.allow_host_port(port)  # the bridge's INPUT rules let instances in
            self.runtime.container_env["YUNZHOU_ROUTER"] = f"{gateway}:{port}"

    def stop(self) -> None:
        if self.certificates is not None:
            self.certificates.stop()
        self.readiness.stop()
        self.supervisor.close()
        if self.containers is not None and self.router.listen:
            self.containers.network.disallow_host_port(int(self.router.listen.rpartition(":")[2]))
        self.isolation.remove_all()
        self.router.stop()
        self.router_pid_file.unlink(missing_ok=True)
