"""Names (docs/names.md): the DNS providers the platform writes to, each environment's naming rule, and the
records the platform owns.

- A provider is a platform-level setting (admins only): its kind, its server, the zones the platform may
  write in, and a secret (TSIG key, API key) sealed like kubeconfigs. Nothing here contacts it: the names
  reconciler (reconcile/names.py) does, and reports what it finds on each record.
- An environment's ``names`` say which provider and zone its apps' names go to, by which rule, with which
  policy (``sync``: records of removed apps are deleted; ``upsert-only``: they are kept), TTL and target
  (addresses for A/AAAA records, or one name for a CNAME).
- Ownership lives in the store (``dns_records``), never in TXT records at the provider.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from yunzhou.domain.errors import Conflict, NotFound, UserError, invalid
from yunzhou.domain.names import (
    NAMING_RULE_DEFAULT,
    check_label,
    check_naming_rule,
    is_dns_name,
    render_naming_rule,
)
from yunzhou.domain.tls_mode import parse_tls_mode
from yunzhou.services.apps import WORK_KIND, work_key
from yunzhou.services.base import ServiceContext, check_version, get_environment
from yunzhou.services.clusters import Sealer
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.services.views import environment_view
from yunzhou.store.leases import enqueue
from yunzhou.store.models import App, DnsProviderRow, DnsRecordRow, Environment, Project

KINDS = ("rfc2136", "powerdns", "local")
POLICIES = ("sync", "upsert-only")
TSIG_ALGORITHMS = ("hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")
DEFAULT_TTL = 300
# which settings each kind takes besides ``zones`` (the secret is separate and required where named)
_SECRET = {"rfc2136": "key_secret", "powerdns": "api_key", "local": None}


def provider_view(p: DnsProviderRow, environments: list[str]) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "settings": p.settings,  # never the secret
        "has_secret": p.secret_ciphertext is not None,
        "environments": environments,
        "created_at": iso(p.created_at),
        "created_by": p.created_by,
        "version": p.version,
    }


def record_view(r: DnsRecordRow) -> dict[str, Any]:
    return {
        "provider": r.provider,
        "zone": r.zone,
        "name": r.name,
        "type": r.type,
        "values": list(r.values),
        "ttl": r.ttl,
        "owner": r.owner,
        "state": r.state,
        "message": r.message,
        "updated_at": iso(r.updated_at),
    }


def check_provider_settings(kind: object, settings: object) -> dict[str, Any]:
    """The settings of a provider of ``kind``, checked and normalised (field paths ``settings.*``)."""
    if kind not in KINDS:
        raise invalid("kind", f"{kind!r} is not a DNS provider kind; one of {', '.join(KINDS)}")
    if not isinstance(settings, Mapping):
        raise invalid("settings", "must be an object")
    allowed = {"zones"} | {
        "rfc2136": {"server", "port", "key_name", "key_algorithm"},
        "powerdns": {"api_url", "server_id"},
        "local": set(),
    }[str(kind)]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise invalid(
            f"settings.{unknown[0]}", f"is not a setting of a {kind} provider; one of {sorted(allowed)}"
        )
    zones = settings.get("zones")
    if not isinstance(zones, list) or not zones:
        raise invalid("settings.zones", "must list the zones the platform may write in, e.g. [example.test]")
    out: dict[str, Any] = {"zones": []}
    for i, zone in enumerate(zones):
        text = zone.lower().rstrip(".") if isinstance(zone, str) else zone
        if not is_dns_name(text):
            raise invalid(f"settings.zones.{i}", f"{zone!r} must be a DNS name such as example.test")
        out["zones"].append(text)
    if kind == "rfc2136":
        server = settings.get("server")
        try:
            out["server"] = str(ipaddress.ip_address(str(server)))
        except ValueError:
            raise invalid("settings.server", f"{server!r} must be the primary's IP address") from None
        port = settings.get("port", 53)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise invalid("settings.port", f"{port!r} must be a port number from 1 to 65535")
        out["port"] = port
        key_name = settings.get("key_name")
        if not isinstance(key_name, str) or not is_dns_name(key_name.lower().rstrip(".")):
            raise invalid(
                "settings.key_name", "must be the TSIG key's name as the server has it, e.g. yunzhou"
            )
        out["key_name"] = key_name.lower().rstrip(".")
        algorithm = settings.get("key_algorithm", "hmac-sha256")
        if algorithm not in TSIG_ALGORITHMS:
            raise invalid("settings.key_algorithm", f"{algorithm!r}: one of {', '.join(TSIG_ALGORITHMS)}")
        out["key_algorithm"] = algorithm
    elif kind == "powerdns":
        url = settings.get("api_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
            raise invalid(
                "settings.api_url", "must be the PowerDNS webserver's URL, e.g. http://10.0.0.2:8081"
            )
        out["api_url"] = url.rstrip("/")
        server_id = settings.get("server_id", "localhost")
        out["server_id"] = check_label(server_id, "settings.server_id")
    return out


def check_names(names: object, providers: Mapping[str, DnsProviderRow], target: str) -> dict[str, Any]:
    """An environment's ``names`` setting, checked against the providers there are (field ``names.*``)."""
    if not isinstance(names, Mapping):
        raise invalid("names", "must be an object with provider and zone (or null to stop naming)")
    allowed = {"provider", "zone", "rule", "policy", "ttl", "addresses", "cname"}
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise invalid(f"names.{unknown[0]}", f"is not a naming setting; one of {sorted(allowed)}")
    provider = providers.get(str(names.get("provider")))
    if provider is None:
        known = ", ".join(sorted(providers)) or "none yet: an admin adds one with `yunzhou dns providers add`"
        raise invalid("names.provider", f"{names.get('provider')!r} is not a DNS provider; known: {known}")
    zone = names.get("zone")
    zone = zone.lower().rstrip(".") if isinstance(zone, str) else zone
    if zone not in provider.settings["zones"]:
        zones = ", ".join(provider.settings["zones"])
        raise invalid(
            "names.zone", f"{names.get('zone')!r} is not a zone of provider {provider.name}: {zones}"
        )
    rule = check_naming_rule(names.get("rule", NAMING_RULE_DEFAULT))
    policy = names.get("policy", "sync")
    if policy not in POLICIES:
        raise invalid("names.policy", f"{policy!r}: one of {', '.join(POLICIES)}")
    ttl = names.get("ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 86400:
        raise invalid("names.ttl", f"{ttl!r} must be an integer number of seconds from 1 to 86400")
    out: dict[str, Any] = {
        "provider": provider.name,
        "zone": zone,
        "rule": rule,
        "policy": policy,
        "ttl": ttl,
    }
    addresses, cname = names.get("addresses"), names.get("cname")
    if addresses is not None and cname is not None:
        raise invalid("names.cname", "give addresses or cname, not both (a CNAME stands alone at its name)")
    if cname is not None:
        text = cname.lower().rstrip(".") if isinstance(cname, str) else cname
        if not is_dns_name(text):
            raise invalid("names.cname", f"{cname!r} must be a DNS name, e.g. ingress.example.test")
        out["cname"] = text
        return out
    if addresses is None:
        if target != "local":
            raise invalid(
                "names.addresses",
                "give the addresses the names point to (the cluster's ingress), or cname",
            )
        addresses = ["127.0.0.1"]  # the local target's router listens on this machine
    if not isinstance(addresses, list) or not addresses or len(addresses) > 20:
        raise invalid("names.addresses", "must be a list of 1 to 20 IP addresses")
    out["addresses"] = []
    for i, address in enumerate(addresses):
        try:
            out["addresses"].append(str(ipaddress.ip_address(str(address))))
        except ValueError:
            raise invalid(f"names.addresses.{i}", f"{address!r} must be an IPv4 or IPv6 address") from None
    return out


def desired_records(
    names: Mapping[str, Any], app: str, env: str, project: str
) -> list[tuple[str, str, list[str]]]:
    """(name, type, values) of the record sets ``names`` gives an app."""
    name = render_naming_rule(names["rule"], app=app, env=env, project=project, zone=names["zone"])
    if "cname" in names:
        return [(name, "CNAME", [names["cname"]])]
    v4 = sorted(a for a in names["addresses"] if ipaddress.ip_address(a).version == 4)
    v6 = sorted(a for a in names["addresses"] if ipaddress.ip_address(a).version == 6)
    return [(name, t, values) for t, values in (("A", v4), ("AAAA", v6)) if values]


def app_name(e: Environment, project: str, app: str) -> str | None:
    """The DNS name an app of ``e`` gets by the environment's rule (None: the environment names nothing)."""
    if not e.names:
        return None
    try:
        return render_naming_rule(e.names["rule"], app=app, env=e.name, project=project, zone=e.names["zone"])
    except UserError:  # too long a name for DNS: the app keeps its default host only
        return None


class NamesService:
    def __init__(self, ctx: ServiceContext, sealer: Sealer | None) -> None:
        self.ctx = ctx
        self.sealer = sealer

    # ---- providers (admins)
    def add_provider(
        self, caller: Caller, name: str, kind: str, settings: object, secret: str | None
    ) -> dict[str, Any]:
        check_label(name, "name")
        clean = check_provider_settings(kind, settings)
        secret_field = _SECRET[kind]
        if secret_field is None and secret is not None:
            raise invalid("secret", f"a {kind} provider takes no secret")
        if secret_field is not None and (not isinstance(secret, str) or not secret or len(secret) > 4096):
            raise invalid("secret", f"a {kind} provider needs its {secret_field} (the secret the server has)")
        if secret is not None and self.sealer is None:
            raise invalid("secret", "this server has no secret key to seal provider secrets with")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if s.scalar(select(DnsProviderRow.id).where(DnsProviderRow.name == name)) is not None:
                raise Conflict(f"DNS provider {name!r} exists already; remove it first to replace it")
            row = DnsProviderRow(
                name=name, kind=kind, settings=clean, created_at=now, created_by=caller.principal,
                secret_ciphertext=self.sealer.seal(secret.encode()) if secret and self.sealer else None,
            )  # fmt: skip
            s.add(row)
            s.flush()
            record_audit(
                s, caller, now, action="dns.provider.add", target=name, project=None,
                detail={"kind": kind, "settings": clean},
            )  # fmt: skip
            return provider_view(row, [])

    def list_providers(self) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            users = _provider_users(s)
            rows = s.scalars(select(DnsProviderRow).order_by(DnsProviderRow.name))
            return [provider_view(p, users.get(p.name, [])) for p in rows]

    def zones(self) -> list[dict[str, Any]]:
        """Each provider's name, kind and zones, for maintainers to choose from: no server, no secret."""
        with self.ctx.db.transaction() as s:
            rows = s.scalars(select(DnsProviderRow).order_by(DnsProviderRow.name))
            return [{"name": p.name, "kind": p.kind, "zones": list(p.settings["zones"])} for p in rows]

    def remove_provider(self, caller: Caller, name: str) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            row = s.scalar(select(DnsProviderRow).where(DnsProviderRow.name == name))
            if row is None:
                raise NotFound(f"DNS provider {name!r} does not exist (see `yunzhou dns providers`)")
            users = _provider_users(s).get(name, [])
            if users:
                raise Conflict(
                    f"DNS provider {name!r} names the apps of {', '.join(users)}; change those first"
                )
            # records it wrote and will still remove block it; those kept by upsert-only (they stay at the
            # provider by that policy) and those it never wrote are forgotten with the provider
            live = s.scalar(
                select(DnsRecordRow.id)
                .where(
                    DnsRecordRow.provider == name,
                    DnsRecordRow.written_at.is_not(None),
                    DnsRecordRow.state != "retained",
                )
                .limit(1)
            )
            if live is not None:
                raise Conflict(
                    f"the platform still owns records at DNS provider {name!r}; wait for the names "
                    "reconciler to remove them (see `yunzhou dns records`)"
                )
            s.execute(delete(DnsRecordRow).where(DnsRecordRow.provider == name))
            s.delete(row)
            record_audit(s, caller, now, action="dns.provider.remove", target=name, project=None)

    # ---- an environment's names and TLS
    def set_environment(
        self,
        caller: Caller,
        project: str,
        env: str,
        *,
        names: object = ...,
        tls: object = ...,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Set (or with None clear) an environment's naming rule and TLS mode; ``...``: unchanged. Every app
        of the environment is reconciled again (its routes and certificates follow)."""
        if names is ... and tls is ...:
            raise invalid("names", "give names and/or tls to change")
        if tls is not ...:
            tls = _check_tls(tls)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            check_version(version, e.version, f"environment {project}/{env}")
            changed: dict[str, Any] = {}
            if names is not ...:
                providers = {p.name: p for p in s.scalars(select(DnsProviderRow))}
                clean = None if names is None else check_names(names, providers, e.target)
                if clean is not None:
                    _check_rule_names(s, e, project, clean)
                if clean != e.names:
                    e.names = changed["names"] = clean
            if tls is not ... and tls != e.tls:
                if (
                    isinstance(tls, str)
                    and tls.startswith(("issuer:", "cluster-issuer:"))
                    and e.target == "local"
                ):
                    raise invalid(
                        "tls", f"{tls!r} names a cert-manager issuer: only for cluster environments"
                    )
                e.tls = changed["tls"] = tls
            if changed:
                s.flush()
                record_audit(
                    s, caller, now, action="env.update", target=f"{project}/{env}", project=project,
                    detail=changed,
                )  # fmt: skip
                for app_id in s.scalars(select(App.id).where(App.environment_id == e.id)):
                    enqueue(s, WORK_KIND, work_key(app_id), now)
            return environment_view(e, project)

    # ---- records
    def records(self, caller: Caller, project: str | None = None) -> list[dict[str, Any]]:
        """The records the platform owns (an admin: all; otherwise those of the caller's projects)."""
        with self.ctx.db.transaction() as s:
            rows = s.scalars(
                select(DnsRecordRow).order_by(DnsRecordRow.zone, DnsRecordRow.name, DnsRecordRow.type)
            )
            out = []
            for r in rows:
                owner_project = r.owner.split("/", 1)[0]
                if project is not None and owner_project != project:
                    continue
                if caller.is_admin or owner_project in caller.roles:
                    out.append(record_view(r))
            return out


def _check_tls(tls: object) -> str | None:
    """The stored form of an environment's ``tls`` (None for off), checked by the one parser."""
    mode = parse_tls_mode(tls)
    if not mode.enabled:
        return None
    return f"{mode.kind}:{mode.issuer}" if mode.issuer else mode.kind


def _provider_users(s: Any) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    rows = s.execute(
        select(Environment.names, Environment.name, Project.name)
        .join(Project, Environment.project_id == Project.id)
        .where(Environment.names.is_not(None))
    )
    for names, env, project in rows:
        if names:
            users.setdefault(names["provider"], []).append(f"{project}/{env}")
    return users


def _check_rule_names(s: Any, e: Environment, project: str, names: Mapping[str, Any]) -> None:
    """A rule that would give an app of ``e`` a name another app owns (a record, or a route of another
    project) is refused now, naming the first clash, rather than reported later on every pass."""
    for (app,) in s.execute(select(App.name).where(App.environment_id == e.id)):
        for name, type_, _ in desired_records(names, app, e.name, project):
            held = s.scalar(
                select(DnsRecordRow).where(
                    DnsRecordRow.provider == names["provider"], DnsRecordRow.zone == names["zone"],
                    DnsRecordRow.name == name, DnsRecordRow.type == type_,
                )
            )  # fmt: skip
            if held is not None and held.owner != f"{project}/{e.name}/{app}" and held.app_id is not None:
                # whose it is stays unsaid: another project's apps are not the caller's to know
                raise Conflict(f"names.rule gives app {app} the name {name}, which another app owns already")
