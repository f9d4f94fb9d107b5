"""Route ownership: which app a host (and path) belongs to, checked in the transaction that records a release.

- An app's default host ``{app}.{env}.{project}.{base_domain}`` is its own by its shape, and every name
  under ``{project}.{base_domain}`` belongs to that project, whether or not it exists yet: no route may
  claim another app's default host, now or before that app is created.
- Any other host belongs to the first project whose app routes it (an extra route or a canary
  ``previewHost``, kept in ``route_claims``); within that project one app has each host and path. The claim
  goes with the app, or with a release that no longer routes it.
- IP addresses and the base domain itself are nobody's (422): the router answers them for everyone.
- A refusal is a 409 naming the owner (``project/env/app``) when the caller may read that project (a
  member, or an admin); to anyone else it says "an app of another project": a stranger learns that the
  host is taken, never by whom (projects' existence stays hidden, as the API's 404s keep it).

Race-safety: SQLite writers are serialised (BEGIN IMMEDIATE); on PostgreSQL claim writes take one
transaction-scoped advisory lock, and the unique (host, path) index backs both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunzhou.domain.errors import Conflict, FieldProblem, UserError
from yunzhou.domain.names import default_host
from yunzhou.services.context import Caller
from yunzhou.store.models import App, CustomDomain, DnsRecordRow, Environment, Project, RouteClaim

_CLAIM_LOCK = 0x59_5A_52_54  # "YZRT": the advisory lock key of route claims on PostgreSQL


@dataclass(frozen=True)
class Claim:
    host: str
    path: str  # normalised as the router matches it: no trailing '/', '/' for the root
    field: str  # where the settings ask for it, for the error


def claims_of(settings: Mapping[str, Any]) -> list[Claim]:
    """The hosts and paths a release's (effective, validated) settings route besides its default host."""
    out: list[Claim] = []
    for i, route in enumerate(settings.get("routes") or []):
        path = str(route.get("path", "/")).rstrip("/") or "/"
        out.append(Claim(str(route["host"]), path, f"settings.routes.{i}.host"))
    preview = (settings.get("rollout") or {}).get("previewHost")
    if preview:
        out.append(Claim(str(preview), "/", "settings.rollout.previewHost"))
    return out


def claim_routes(
    s: Session,
    caller: Caller,
    project: Project,
    env: str,
    app: App,
    settings: Mapping[str, Any],
    base_domain: str,
) -> None:
    """Make ``app``'s claims those of ``settings``, or raise (422 its own default route, 409 taken)."""
    claims = claims_of(settings)
    own = default_host(app.name, env, project.name, base_domain)
    duplicates = [
        FieldProblem(c.field, f"{own} is the app's default host; '/' on it is routed already")
        for c in claims
        if (c.host, c.path) == (own, "/")
    ]
    if duplicates:
        raise UserError(f"{duplicates[0]}", problems=duplicates)
    for c in claims:
        _check_reserved(c, project.name, env, app.name, base_domain)
    if claims and s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})
    hosts = sorted({c.host for c in claims})
    _check_held_elsewhere(s, app.id, claims, hosts)
    held = (
        s.execute(
            select(RouteClaim, App.name, Environment.name, Project.name)
            .join(App, RouteClaim.app_id == App.id)
            .join(Environment, App.environment_id == Environment.id)
            .join(Project, Environment.project_id == Project.id)
            .where(RouteClaim.host.in_(hosts), RouteClaim.app_id != app.id)
        ).all()
        if hosts
        else []
    )
    for c in claims:
        for row, app_name, env_name, project_name in held:
            if row.host == c.host and (row.project_id != project.id or row.path == c.path):
                owner = f"{project_name}/{env_name}/{app_name}"
                raise _taken(
                    c, owner if _may_read(caller, project_name) else None, row.project_id == project.id
                )
    s.execute(delete(RouteClaim).where(RouteClaim.app_id == app.id))
    for host, path in dict.fromkeys((c.host, c.path) for c in claims):
        s.add(RouteClaim(host=host, path=path, app_id=app.id, project_id=project.id))
    try:
        s.flush()
    except IntegrityError as exc:  # claimed by a transaction that committed meanwhile
        raise Conflict("a host of these routes was claimed meanwhile; retry to see by whom") from exc


def _check_held_elsewhere(s: Session, app_id: int, claims: list[Claim], hosts: list[str]) -> None:
    """Another app's custom domain (services/custom_domains.py, verified or about to be) and another app's
    DNS name by its environment's naming rule (services/names.py) are that app's own: 409."""
    if not hosts:
        return
    others = {
        "custom domain": select(CustomDomain.host).where(
            CustomDomain.host.in_(hosts), CustomDomain.app_id != app_id
        ),
        "DNS name": select(DnsRecordRow.name).where(
            DnsRecordRow.name.in_(hosts), DnsRecordRow.app_id.is_not(None), DnsRecordRow.app_id != app_id
        ),
    }
    for what, query in others.items():
        held = set(s.scalars(query))
        for c in claims:
            if c.host in held:
                message = f"{c.host} is another app's {what}; a host belongs to one app only"
                raise Conflict(f"{c.field}: {message}", problems=[FieldProblem(c.field, message)])


def _check_reserved(c: Claim, project: str, env: str, app: str, base_domain: str) -> None:
    # The router answers every address it listens on and the base domain itself for everyone: a route
    # there would serve one project's app to whoever opens http://127.0.0.1:8080/ or http://localhost/.
    if _is_ip_literal(c.host) or c.host == base_domain:
        what = "an IP address" if _is_ip_literal(c.host) else "the platform's base domain"
        message = f"{c.host} is {what}, which no app may route; use a DNS name of the app's own"
        raise UserError(f"{c.field}: {message}", problems=[FieldProblem(c.field, message)])
    suffix = "." + base_domain
    if not c.host.endswith(suffix):
        return
    labels = c.host[: -len(suffix)].split(".")
    if labels[-1] != project:
        message = f"{c.host} is under {labels[-1]}{suffix}, the names of project {labels[-1]!r}"
        raise Conflict(f"{c.field}: {message}", problems=[FieldProblem(c.field, message)])
    if len(labels) == 3 and (labels[0], labels[1]) != (app, env):
        owner = f"{project}/{labels[1]}/{labels[0]}"
        message = f"{c.host} is the default host of app {owner}"
        raise Conflict(f"{c.field}: {message}", problems=[FieldProblem(c.field, message)])


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _may_read(caller: Caller, project: str) -> bool:
    return caller.is_admin or project in caller.roles


def _taken(c: Claim, owner: str | None, same_project: bool) -> Conflict:
    where = f"{c.host}{c.path}" if same_project else c.host
    by = f"app {owner}" if owner is not None else "an app of another project"
    message = f"{where} is routed by {by}; a host belongs to one project, a host and path to one app"
    return Conflict(f"{c.field}: {message}", problems=[FieldProblem(c.field, message)])
