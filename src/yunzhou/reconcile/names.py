"""The names reconciler (docs/names.md): makes the DNS records the environments' naming rules ask for, at
their providers, and verifies custom domains.

One pass:
1. Reads, in one transaction, what should exist — for every app with a release in an environment that
   has ``names``: the record sets of its rule (services/names.py ``desired_records``) — and what the
   platform owns (``dns_records``).
2. A record set the platform owns is upserted when its values, TTL or state differ (or when a periodic
   full check, every ``full_check_every`` seconds, finds the provider's copy changed by hand: self-heal).
3. A record set the platform does not own yet is first looked up at the provider: if something is at that
   name (of that type, or a CNAME, or anything when a CNAME is wanted), it is someone else's and is never
   overwritten — the ownership row is kept with state ``conflict`` and the reason, and looked at again on
   every pass. Otherwise the row is written (``pending``) and committed *before* the upsert, so a crash
   between the two leaves a row the next pass completes instead of a record nobody owns.
4. A record set nobody wants any more (its app removed, the rule or provider changed): with policy
   ``sync`` it is deleted at the provider and its row removed; with ``upsert-only`` it stays at the
   provider and the row is kept as ``retained`` (the name is still the platform's: a later app may adopt it).
5. Custom domains waiting for verification are looked up (TXT ``_yunzhou-challenge.<host>``); a verified
   one is routed from the app's next reconcile.

Provider errors are recorded on the rows they concern (state ``error``, the provider's message, never a
secret) and retried on the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from yunzhou.domain.errors import PermanentError, TemporaryError, UserError, YunzhouError
from yunzhou.names.dns import (
    DnsProvider,
    DnsRecord,
    LocalDnsProvider,
    LocalDnsSettings,
    PowerDnsProvider,
    PowerDnsSettings,
    Rfc2136Provider,
    Rfc2136Settings,
)
from yunzhou.services.apps import WORK_KIND, work_key
from yunzhou.services.custom_domains import CHALLENGE_LABEL, challenge_value
from yunzhou.services.names import desired_records
from yunzhou.store.db import Database
from yunzhou.store.leases import enqueue
from yunzhou.store.models import App, CustomDomain, DnsProviderRow, DnsRecordRow, Environment, Project

log = logging.getLogger("yunzhou.reconcile.names")
Key = tuple[str, str, str, str]  # provider, zone, name, type
DEFAULT_INTERVAL = 5.0
FULL_CHECK_EVERY = 300.0
# between lookups of one pending custom domain: often while the user is likely setting the record up, then
# seldom (a domain left pending for days costs a lookup every few minutes, not every pass)
RECHECK = timedelta(seconds=10)
RECHECK_LATER = timedelta(minutes=5)
RECHECK_OFTEN_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Wanted:
    values: tuple[str, ...]
    ttl: int
    app_id: int
    environment_id: int
    owner: str  # project/env/app


class NamesReconciler:
    def __init__(
        self,
        db: Database,
        open_secret: Callable[[str], bytes],
        clock: Callable[[], datetime],
        *,
        data_dir: Path,
        hosts_file: Path = Path("/etc/hosts"),
        resolve_txt: Callable[[str], list[str]] | None = None,
        interval: float = DEFAULT_INTERVAL,
        full_check_every: float = FULL_CHECK_EVERY,
    ) -> None:
        """``open_secret``: unseals a provider's secret; ``resolve_txt``: the TXT strings at a name
        (custom-domain verification; default: the system's resolver)."""
        self.db = db
        self.open_secret = open_secret
        self.clock = clock
        self.local_settings = LocalDnsSettings(data_dir / "names" / "local-dns.json", hosts_file)
        self.resolve_txt = resolve_txt
        self.interval = interval
        self.full_check_every = full_check_every
        self._last_full = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.factories: dict[str, Callable[[DnsProviderRow], DnsProvider]] = {
            "rfc2136": self._rfc2136,
            "powerdns": self._powerdns,
            "local": lambda _row: LocalDnsProvider(self.local_settings),
        }

    # ---- providers from their rows
    def _rfc2136(self, row: DnsProviderRow) -> DnsProvider:
        st = row.settings
        secret = self.open_secret(row.secret_ciphertext or "").decode()
        return Rfc2136Provider(
            Rfc2136Settings(st["server"], st["key_name"], secret, st["port"], st["key_algorithm"])
        )

    def _powerdns(self, row: DnsProviderRow) -> DnsProvider:
        secret = self.open_secret(row.secret_ciphertext or "").decode()
        return PowerDnsProvider(PowerDnsSettings(row.settings["api_url"], secret, row.settings["server_id"]))

    def zone_providers(self) -> list[tuple[str, DnsProvider]]:
        """Every zone the platform may write in, with its provider (ACME's dns-01, names/tls/acme.py)."""
        with self.db.transaction() as s:
            rows = list(s.scalars(select(DnsProviderRow).order_by(DnsProviderRow.name)))
            out = []
            for row in rows:
                provider = self.factories[row.kind](row)
                out += [(zone, provider) for zone in row.settings["zones"]]
            return out

    # ---- the pass
    def run_once(self) -> dict[str, int]:
        """One pass; returns counts of what it did (upserted, deleted, conflicts, errors, verified)."""
        full = time.monotonic() - self._last_full >= self.full_check_every
        counts = {"upserted": 0, "deleted": 0, "conflicts": 0, "errors": 0, "verified": 0}
        wanted, policies, providers, owned = self._read()
        zones: dict[tuple[str, str], list[DnsRecord] | YunzhouError] = {}

        def at_provider(provider: str, zone: str) -> list[DnsRecord]:
            cached = zones.get((provider, zone))
            if cached is None:
                try:
                    cached = providers[provider].list_records(zone)
                except YunzhouError as exc:
                    cached = exc
                zones[(provider, zone)] = cached
            if isinstance(cached, YunzhouError):
                raise cached
            return cached

        for key, want in sorted(wanted.items()):
            row = owned.get(key)
            provider_name, zone, name, type_ = key
            if provider_name not in providers:
                continue
            try:
                if row is not None and row.app_id not in (None, want.app_id) and row.state != "conflict":
                    counts["conflicts"] += 1  # two apps' rules give one name: the first keeps it
                    continue
                # never written by the platform (new, refused, failed, or cut short): whatever is at the
                # name is looked at first, so a record someone else made is never overwritten
                fresh = row is None or row.written_at is None
                if fresh:
                    foreign = _foreign(at_provider(provider_name, zone), name, type_, row)
                    if foreign is not None:
                        self._mark(key, want, "conflict", foreign)
                        counts["conflicts"] += 1
                        continue
                    self._mark(key, want, "pending", None)
                elif row is not None and not full and _same(row, want) and row.state == "synced":
                    continue
                elif row is not None and full and _same(row, want) and row.state == "synced":
                    current = [
                        r for r in at_provider(provider_name, zone) if (r.name, r.type.value) == (name, type_)
                    ]
                    if current and current[0].values == want.values and current[0].ttl == want.ttl:
                        continue
                    log.warning(
                        "record %s %s was changed at %s outside Yunzhou: restoring",
                        name,
                        type_,
                        provider_name,
                    )
                providers[provider_name].upsert(zone, name, type_, want.values, want.ttl)
                self._mark(key, want, "synced", None)
                counts["upserted"] += 1
            except YunzhouError as exc:
                self._mark(key, want, "error", str(exc))
                counts["errors"] += 1
        for key, row in sorted(owned.items()):
            if key in wanted:
                continue
            provider_name, zone, name, type_ = key
            try:
                self._release(
                    row, providers.get(provider_name), policies.get(row.environment_id or -1, "sync")
                )
                counts["deleted"] += 1
            except YunzhouError as exc:
                self._set_state(row.id, "error", f"removing it: {exc}")
                counts["errors"] += 1
        if full:
            self._last_full = time.monotonic()
        counts["verified"] = self.verify_domains()
        return counts

    def _read(
        self,
    ) -> tuple[dict[Key, Wanted], dict[int, str], dict[str, DnsProvider], dict[Key, DnsRecordRow]]:
        wanted: dict[Key, Wanted] = {}
        policies: dict[int, str] = {}
        with self.db.transaction() as s:
            rows = s.execute(
                select(Environment, Project.name)
                .join(Project, Environment.project_id == Project.id)
                .where(Environment.names.is_not(None))
                .order_by(Environment.id)
            ).all()
            for env, project in rows:
                names = env.names
                if not names:
                    continue
                policies[env.id] = names["policy"]
                apps = s.execute(
                    select(App.id, App.name)
                    .where(
                        App.environment_id == env.id,
                        App.removing.is_(False),
                        App.desired_release.is_not(None),
                    )
                    .order_by(App.id)
                )
                for app_id, app in apps:
                    try:
                        records = desired_records(names, app, env.name, project)
                    except UserError as exc:  # a name longer than DNS allows: the app keeps its default host
                        log.warning("app %s/%s/%s gets no DNS name: %s", project, env.name, app, exc)
                        continue
                    for name, type_, values in records:
                        key = (names["provider"], names["zone"], name, type_)
                        wanted.setdefault(
                            key,
                            Wanted(
                                tuple(values), names["ttl"], app_id, env.id, f"{project}/{env.name}/{app}"
                            ),
                        )
            providers: dict[str, DnsProvider] = {}
            for row in s.scalars(select(DnsProviderRow)):
                try:
                    providers[row.name] = self.factories[row.kind](row)
                except (KeyError, ValueError, YunzhouError) as exc:  # a secret that no longer opens
                    log.error("DNS provider %s cannot be used: %s", row.name, exc)
            owned = {(r.provider, r.zone, r.name, r.type): r for r in s.scalars(select(DnsRecordRow))}
            for r in owned.values():
                s.expunge(r)
        return wanted, policies, providers, owned

    def _mark(self, key: Key, want: Wanted, state: str, message: str | None) -> None:
        provider, zone, name, type_ = key
        with self.db.transaction() as s:
            row = s.scalar(
                select(DnsRecordRow).where(
                    DnsRecordRow.provider == provider, DnsRecordRow.zone == zone,
                    DnsRecordRow.name == name, DnsRecordRow.type == type_,
                )
            )  # fmt: skip
            if row is None:
                row = DnsRecordRow(provider=provider, zone=zone, name=name, type=type_)
                s.add(row)
            changed = (row.state, row.message) != (state, message)
            row.values, row.ttl, row.owner = list(want.values), want.ttl, want.owner
            row.app_id, row.environment_id = want.app_id, want.environment_id
            row.state, row.message, row.updated_at = state, message, self.clock()
            if state == "synced":
                row.written_at = row.updated_at
            if changed and state in ("conflict", "error"):
                log.warning("DNS record %s %s of %s: %s: %s", name, type_, want.owner, state, message)
            if state == "synced" and changed:
                enqueue(s, WORK_KIND, work_key(want.app_id), self.clock())  # its status shows the name

    def _set_state(self, row_id: int, state: str, message: str | None) -> None:
        with self.db.transaction() as s:
            row = s.get(DnsRecordRow, row_id)
            if row is not None:
                row.state, row.message, row.updated_at = state, message, self.clock()

    def _release(self, row: DnsRecordRow, provider: DnsProvider | None, policy: str) -> None:
        """A record set nobody wants: deleted (sync), kept (upsert-only), or forgotten (never written)."""
        if row.written_at is None and row.state != "pending":  # never written (someone else's, or refused)
            with self.db.transaction() as s:
                s.execute(delete(DnsRecordRow).where(DnsRecordRow.id == row.id))
            return
        if row.state == "retained":  # kept by upsert-only when released: it stays, whatever the policy now
            return
        if policy == "upsert-only":
            if row.state != "retained":
                self._set_state(
                    row.id, "retained", f"kept at the provider (policy upsert-only); was {row.owner}'s"
                )
            return
        if provider is None:
            raise PermanentError(f"DNS provider {row.provider!r} cannot be used to remove {row.name}")
        provider.delete(row.zone, row.name, row.type)
        with self.db.transaction() as s:
            s.execute(delete(DnsRecordRow).where(DnsRecordRow.id == row.id))
        log.info("removed DNS record %s %s (was %s's)", row.name, row.type, row.owner)

    # ---- custom domains
    def verify_domains(self) -> int:
        """Look up the TXT challenge of each pending custom domain not looked at for ``RECHECK`` (in its
        first hour; ``RECHECK_LATER`` after that, or at once after ``verify``); a match
        verifies it (and reconciles its app, which then routes it). Returns how many were verified."""
        now = self.clock()
        with self.db.transaction() as s:
            due = [
                (d.id, d.host, d.token)
                for d in s.scalars(select(CustomDomain).where(CustomDomain.state == "pending"))
                if d.checked_at is None
                or now - d.checked_at
                >= (RECHECK if now - d.created_at < RECHECK_OFTEN_FOR else RECHECK_LATER)
            ]
        verified = 0
        for domain_id, host, token in due:
            name = f"{CHALLENGE_LABEL}.{host}"
            problem: str | None
            try:
                found = (self.resolve_txt or system_txt)(name)
            except YunzhouError as exc:
                found, problem = [], str(exc)
            else:
                problem = (
                    f"no TXT record {challenge_value(token)!r} at {name} yet"
                    if challenge_value(token) not in found
                    else None
                )
            with self.db.transaction() as s:
                d = s.get(CustomDomain, domain_id)
                if d is None or d.state != "pending":
                    continue
                d.checked_at = self.clock()
                d.message = problem
                if problem is None:
                    d.state, d.verified_at = "verified", self.clock()
                    enqueue(s, WORK_KIND, work_key(d.app_id), self.clock())
                    verified += 1
                    log.info("custom domain %s verified", host)
        return verified

    # ---- the loop
    def start(self) -> NamesReconciler:
        self._thread = threading.Thread(target=self._run, name="names", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("names pass failed")
            self._stop.wait(self.interval)


def _same(row: DnsRecordRow, want: Wanted) -> bool:
    return tuple(row.values) == want.values and row.ttl == want.ttl and row.app_id == want.app_id


def _foreign(records: Iterable[DnsRecord], name: str, type_: str, row: DnsRecordRow | None) -> str | None:
    """Why the provider's records at ``name`` are someone else's (None: nothing there, or only ours: what
    a pass wrote and stopped before marking it — a pending row with exactly those values)."""
    for r in records:
        if r.name != name:
            continue
        mine = row is not None and row.state == "pending" and r.values == tuple(row.values)
        if r.type.value == type_ and mine:
            continue
        if r.type.value == type_ or "CNAME" in (r.type.value, type_):
            values = ", ".join(r.values)
            return (
                f"{name} already has a {r.type.value} record ({values}) that Yunzhou did not make; it is "
                "never overwritten: remove it at the provider, or change the environment's naming rule"
            )
    return None


def system_txt(name: str) -> list[str]:
    """The TXT strings at ``name`` from the system's resolver (or YUNZHOU_DNS_RESOLVER=IP[:PORT])."""
    import os

    import dns.exception
    import dns.resolver

    configured = os.environ.get("YUNZHOU_DNS_RESOLVER", "").strip()
    resolver = dns.resolver.Resolver(configure=not configured)
    if configured:
        host, port = _address(configured)
        resolver.nameservers, resolver.port = [host], port
    resolver.lifetime = 5.0
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise TemporaryError(f"looking up TXT {name}: {exc}") from None
    return [b"".join(r.strings).decode(errors="replace") for r in answer]


def _address(text: str) -> tuple[str, int]:
    """``IP``, ``IPv4:PORT`` or ``[IPv6]:PORT`` (YUNZHOU_DNS_RESOLVER)."""
    import ipaddress

    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ValueError(f"YUNZHOU_DNS_RESOLVER={text!r}: must be IP, IPv4:PORT or [IPv6]:PORT") from None


def names_interval(environ: dict[str, str] | None = None) -> float:
    import os

    raw = (environ or dict(os.environ)).get("YUNZHOU_NAMES_INTERVAL", "")
    try:
        return max(0.5, float(raw)) if raw else DEFAULT_INTERVAL
    except ValueError:
        raise ValueError(f"YUNZHOU_NAMES_INTERVAL={raw!r}: must be a number of seconds") from None
