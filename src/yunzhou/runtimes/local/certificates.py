"""Certificates for the local target's HTTPS hosts, issued and renewed beside the reconcile passes.

The runtime says which hosts want a certificate and from which issuer (``want``: host → ``"local"`` or
``"acme"``); a thread of the keeper issues what is missing or due (less than a third of the lifetime
left), each into a new directory ``<dir>/<host or hash>/<generation>/`` (``cert.pem``, ``key.pem`` 0600,
``leaf.json``), and calls ``on_change`` so the runtime pushes a snapshot naming the new files: the router
loads them for the next handshake while open connections keep theirs. New files never replace files a
snapshot names, so the router never reads a key of one certificate with the chain of another. Issuance
(an ACME order takes seconds) never runs in a reconcile pass; ``section`` and ``problems`` only read.

A failed issuance is logged once per distinct error, tried again with exponential backoff, and reported
by ``problems`` (the app's ``Secured`` condition). The current certificate keeps being served meanwhile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import YunzhouError
from yunzhou.names.tls.issuers import CertificateIssuer, Leaf
from yunzhou.names.tls.local_ca import renewal_due
from yunzhou.runtimes.protocol import RouteSpec

log = logging.getLogger("yunzhou.runtimes.local.certificates")

LEAF_FILE = "leaf.json"
RETRY_FIRST = 5.0  # seconds before the first retry of a failed issuance; doubles up to RETRY_MAX
RETRY_MAX = 600.0
_RECHECK = 60.0  # the longest the thread sleeps: renewal times are wall-clock, the wait is monotonic
_PLAIN_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]{0,199}$")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def host_directory_name(host: str) -> str:
    """The host itself when it is a plain DNS name, else a hash of it (wildcards, odd characters)."""
    if _PLAIN_HOST.match(host) and ".." not in host:
        return host
    return "h-" + hashlib.sha256(host.encode()).hexdigest()[:32]


@dataclass
class _HostState:
    current: Leaf | None = None  # the certificate served
    failures: int = 0
    retry_at: float = 0.0  # monotonic
    error: str = ""
    logged: str = ""  # the last error logged, so a failure repeating itself is logged once


def _write_record(leaf: Leaf, generation: Path) -> None:
    record = {
        "hosts": list(leaf.hosts),
        "issuer": leaf.issuer,
        "not_before": leaf.not_before.isoformat(),
        "not_after": leaf.not_after.isoformat(),
        "cert_file": str(leaf.cert_file.relative_to(generation)),
        "key_file": str(leaf.key_file.relative_to(generation)),
    }
    tmp = generation / (LEAF_FILE + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(generation / LEAF_FILE)


def _read_record(generation: Path) -> Leaf | None:
    try:
        record = json.loads((generation / LEAF_FILE).read_text(encoding="utf-8"))
        leaf = Leaf(
            hosts=tuple(record["hosts"]),
            cert_file=generation / record["cert_file"],
            key_file=generation / record["key_file"],
            not_before=dt.datetime.fromisoformat(record["not_before"]),
            not_after=dt.datetime.fromisoformat(record["not_after"]),
            issuer=str(record["issuer"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return leaf if leaf.cert_file.is_file() and leaf.key_file.is_file() else None


def check_pair(leaf: Leaf) -> None:
    """Raise ValueError unless the router would accept the files: a key only its owner can read and a
    chain that matches it (a refused file would make the router refuse the whole snapshot)."""
    mode = stat.S_IMODE(leaf.key_file.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"the issuer wrote the key with mode {mode:04o}; it must be 0600 or 0400")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(leaf.cert_file, leaf.key_file)
    except ssl.SSLError as exc:
        raise ValueError(f"the issued chain and key do not load ({exc.reason or 'unreadable'})") from None


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, YunzhouError) else str(exc) or type(exc).__name__


def https_hosts(
    tls: Mapping[int, str], routes: Mapping[int, tuple[str, tuple[RouteSpec, ...]]]
) -> dict[str, str]:
    """Each route host of the apps served over HTTPS (app id → issuer) → its issuer (the lowest app id's)."""
    hosts: dict[str, str] = {}
    for app_id, issuer in sorted(tls.items()):
        for route in routes.get(app_id, ("", ()))[1]:
            hosts.setdefault(route.host, issuer)
    return hosts


def https_route_fields(
    routes: list[dict[str, Any]], https: Mapping[str, Mapping[str, Any]], served: Mapping[str, object]
) -> None:
    """Set ``redirect_https`` / ``hsts_max_age`` on the snapshot ``routes`` of apps served over HTTPS
    (``https``: app address → its ``settings.https``), only on hosts the router has a certificate for
    (``served``: the snapshot's certificates): a redirect to a host without one would break it."""
    for route in routes:
        settings = https.get(route["app"])
        if not settings or route["host"] not in served:
            continue
        if settings.get("redirect"):
            route["redirect_https"] = True
        if settings.get("hstsMaxAge") is not None:
            route["hsts_max_age"] = settings["hstsMaxAge"]


def not_secured(keeper: CertificateKeeper | None, hosts: Iterable[str]) -> tuple[str, ...]:
    """Why each of an HTTPS app's hosts is not (yet) served with the certificate its environment asks for."""
    if keeper is None:
        return tuple(
            f"{host}: this server has no HTTPS listener (YUNZHOU_TLS_LISTEN, docs/tls.md)" for host in hosts
        )
    return keeper.problems(hosts)


class CertificateKeeper:
    def __init__(
        self,
        directory: Path,
        issuers: Mapping[str, CertificateIssuer],
        on_change: Callable[[], None] = lambda: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        """``directory``: where certificates live (``<data dir>/tls/hosts``); ``issuers`` by name."""
        self.directory = directory
        self.issuers = dict(issuers)
        self.on_change = on_change
        self.clock = clock
        self.now = now
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._wanted: dict[str, str] = {}  # host → issuer name
        self._hosts: dict[str, _HostState] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # ---- what the runtime calls (cheap, never blocks on issuance)
    def want(self, hosts: Mapping[str, str]) -> None:
        """The hosts to serve over HTTPS now, each with its issuer's name; others are no longer served."""
        with self._lock:
            if hosts == self._wanted:
                return
            self._wanted = dict(hosts)
        self._wake.set()

    def section(self) -> dict[str, dict[str, str]]:
        """The router snapshot's ``certificates`` section: each wanted host that has a certificate (until
        its replacement is issued, the one it has, even from the issuer it had before)."""
        with self._lock:
            section = {}
            for host in sorted(self._wanted):
                state = self._hosts.get(host)
                if state is not None and state.current is not None:
                    leaf = state.current
                    section[host] = {"cert_file": str(leaf.cert_file), "key_file": str(leaf.key_file)}
            return section

    def problems(self, hosts: Iterable[str]) -> tuple[str, ...]:
        """Why each of ``hosts`` that wants HTTPS is not (yet) served with the certificate asked for."""
        out = []
        with self._lock:
            for host in hosts:
                issuer = self._wanted.get(host)
                if issuer is None:
                    continue
                state = self._hosts.get(host) or _HostState()
                if state.error:
                    wait = max(0.0, state.retry_at - self.clock())
                    out.append(
                        f"{host}: no certificate from the {issuer} CA: {state.error}"
                        f" (attempt {state.failures}, next in {wait:.0f} s)"
                    )
                elif state.current is None or state.current.issuer != issuer:
                    out.append(f"{host}: a certificate from the {issuer} CA is being issued")
        return tuple(out)

    # ---- the thread
    def start(self) -> CertificateKeeper:
        self._thread = threading.Thread(target=self._run, name="certificates", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sleep = self.run_once()
            except Exception:  # a bug must not end renewals for good: logged, tried again later
                log.exception("the certificate keeper failed; trying again in %g s", self.retry_first)
                sleep = self.retry_first
            self._wake.wait(sleep)
            self._wake.clear()

    def run_once(self) -> float:
        """Issue what is missing or due now; returns how long to wait before looking again."""
        changed = False
        for host, issuer in self._due():
            if self._stopping.is_set():
                break
            changed = self._issue(host, issuer) or changed
        if changed:
            try:
                self.on_change()
            except Exception as exc:  # the router not answering: the next reconcile pass pushes it
                log.warning("pushing new certificates to the router failed: %s", _reason(exc))
        return self._next_wait()

    def _needs(self, host: str, issuer: str, state: _HostState) -> bool:
        leaf = state.current
        return (
            leaf is None or leaf.issuer != issuer or renewal_due(leaf.not_before, leaf.not_after, self.now())
        )

    def _due(self) -> list[tuple[str, str]]:
        now = self.clock()
        with self._lock:
            return [
                (host, issuer)
                for host, issuer in sorted(self._wanted.items())
                if self._needs(host, issuer, state := self._hosts.setdefault(host, _HostState()))
                and now >= state.retry_at
            ]

    def _next_wait(self) -> float:
        wait = _RECHECK
        now, wall = self.clock(), self.now()
        with self._lock:
            for host, issuer in self._wanted.items():
                state = self._hosts.get(host) or _HostState()
                if state.error:
                    wait = min(wait, state.retry_at - now)
                elif state.current is not None and state.current.issuer == issuer:
                    leaf = state.current
                    renew_at = leaf.not_after - (leaf.not_after - leaf.not_before) / 3
                    wait = min(wait, (renew_at - wall).total_seconds())
                else:
                    wait = 0.0
        return max(wait, 0.05)

    def _issue(self, host: str, issuer_name: str) -> bool:
        issuer = self.issuers.get(issuer_name)
        host_dir = self.directory / host_directory_name(host)
        generation = host_dir / str(time.time_ns())
        try:
            if issuer is None:
                raise ValueError(f"this server has no {issuer_name} CA configured")
            host_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            leaf = issuer.issue([host], generation)
            check_pair(leaf)
            _write_record(leaf, generation)
        except Exception as exc:  # any issuer's failure is recorded for the app, never raised here
            shutil.rmtree(generation, ignore_errors=True)
            expected = isinstance(exc, YunzhouError | ValueError | OSError)
            self._failed(host, issuer_name, _reason(exc), unexpected=not expected)
            return False
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            renewed = state.current is not None
            state.current, state.failures, state.error, state.logged = leaf, 0, "", ""
        log.info(
            "%s certificate for %s from the %s CA, valid until %s",
            "renewed" if renewed else "new", host, issuer_name, leaf.not_after.isoformat(timespec="seconds"),
        )  # fmt: skip
        self._prune(host_dir, keep=generation)
        return True

    def _failed(self, host: str, issuer: str, reason: str, *, unexpected: bool) -> None:
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
            state.failures += 1
            delay = min(self.retry_first * 2 ** (state.failures - 1), self.retry_max)
            state.retry_at = self.clock() + delay
            state.error = reason
            first = state.logged != reason
            state.logged = reason
        if first:  # once per distinct error; the app's Secured condition shows each attempt
            log.warning(
                "no certificate for %s from the %s CA: %s (trying again with backoff)",
                host, issuer, reason, exc_info=unexpected,
            )  # fmt: skip

    @staticmethod
    def _prune(host_dir: Path, keep: Path) -> None:
        """Keep the new generation and the one before (the router may still be loading it)."""
        generations = sorted((p for p in host_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
        for old in [g for g in generations if g != keep][:-1]:
            shutil.rmtree(old, ignore_errors=True)

    def _load(self) -> None:
        """Certificates issued before a restart are served again (the newest complete one per host)."""
        if not self.directory.is_dir():
            return
        for host_dir in self.directory.iterdir():
            if not host_dir.is_dir():
                continue
            generations = sorted((p for p in host_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
            for generation in reversed(generations):
                leaf = _read_record(generation)
                if leaf is not None and leaf.hosts:
                    self._hosts[leaf.hosts[0]] = _HostState(current=leaf)
                    break
