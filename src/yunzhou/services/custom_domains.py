"""Custom domains (docs/names.md): a host of the user's own that an app serves once the user proved control
of it with a TXT record ``_yunzhou-challenge.<host>`` = ``yunzhou-verification=<token>``.

Until then the host is not routed (nobody can point a name they do not control at a project's app and
have the router serve it, nor take a name another project will verify). The names reconciler looks the
TXT record up (reconcile/names.py) and, once it matches, reconciles the app, which routes the host.
A host belongs to one app: asking for one that another app asked for, or that another project routes, is
a 409 that does not say whose it is.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from yunzhou.domain.errors import Conflict, NotFound, invalid
from yunzhou.domain.names import is_dns_name
from yunzhou.services.apps import WORK_KIND, work_key
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.leases import enqueue
from yunzhou.store.models import CustomDomain, RouteClaim

CHALLENGE_LABEL = "_yunzhou-challenge"
MAX_PER_APP = 20


def challenge_value(token: str) -> str:
    return f"yunzhou-verification={token}"


def domain_view(d: CustomDomain, address: str) -> dict[str, Any]:
    return {
        "host": d.host,
        "app": address,
        "state": d.state,
        "challenge": {
            "name": f"{CHALLENGE_LABEL}.{d.host}",
            "type": "TXT",
            "value": challenge_value(d.token),
        },
        "message": d.message,
        "created_at": iso(d.created_at),
        "checked_at": iso(d.checked_at),
        "verified_at": iso(d.verified_at),
    }


class CustomDomainService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def add(self, caller: Caller, project: str, env: str, app: str, host: object) -> dict[str, Any]:
        text = host.lower().rstrip(".") if isinstance(host, str) else host
        if not is_dns_name(text) or "." not in str(text):
            raise invalid("host", f"{host!r} must be a DNS name of yours such as shop.example.com")
        assert isinstance(text, str)
        base = self.ctx.base_domain
        if text == base or text.endswith("." + base):
            raise invalid(
                "host", f"{text} is under the platform's base domain {base}: those names are given by rule"
            )
        now = self.ctx.clock()
        address = f"{project}/{env}/{app}"
        with self.ctx.db.transaction() as s:
            p, _, a = get_app(s, project, env, app)
            taken = s.scalar(select(CustomDomain).where(CustomDomain.host == text))
            if taken is not None:
                if taken.app_id == a.id:
                    return domain_view(taken, address)
                raise Conflict(f"host {text} was asked for by another app; it can belong to one app only")
            claim = s.scalar(select(RouteClaim).where(RouteClaim.host == text, RouteClaim.app_id != a.id))
            if claim is not None:
                raise Conflict(f"host {text} is routed by another app; it can belong to one app only")
            count = len(s.scalars(select(CustomDomain.id).where(CustomDomain.app_id == a.id)).all())
            if count >= MAX_PER_APP:
                raise invalid("host", f"app {address} has {count} custom domains, the most one app may have")
            d = CustomDomain(
                host=text, app_id=a.id, project_id=p.id, token=secrets.token_urlsafe(24), state="pending",
                created_at=now,
            )  # fmt: skip
            s.add(d)
            s.flush()
            record_audit(
                s, caller, now, action="custom_domain.add", target=address, project=project,
                detail={"host": text},
            )  # fmt: skip
            return domain_view(d, address)

    def list(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(
                select(CustomDomain).where(CustomDomain.app_id == a.id).order_by(CustomDomain.host)
            )
            return [domain_view(d, f"{project}/{env}/{app}") for d in rows]

    def verify(self, caller: Caller, project: str, env: str, app: str, host: str) -> dict[str, Any]:
        """Look again now (the names reconciler's next pass) — also for a domain whose check failed."""
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            d = s.scalar(select(CustomDomain).where(CustomDomain.app_id == a.id, CustomDomain.host == host))
            if d is None:
                raise NotFound(f"app {project}/{env}/{app} has no custom domain {host}")
            if d.state != "verified":
                d.state, d.checked_at = "pending", None
            return domain_view(d, f"{project}/{env}/{app}")

    def remove(self, caller: Caller, project: str, env: str, app: str, host: str) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            d = s.scalar(select(CustomDomain).where(CustomDomain.app_id == a.id, CustomDomain.host == host))
            if d is None:
                raise NotFound(f"app {project}/{env}/{app} has no custom domain {host}")
            s.delete(d)
            record_audit(
                s, caller, now, action="custom_domain.remove", target=f"{project}/{env}/{app}",
                project=project, detail={"host": host},
            )  # fmt: skip
            enqueue(s, WORK_KIND, work_key(a.id), now)  # no longer routed
