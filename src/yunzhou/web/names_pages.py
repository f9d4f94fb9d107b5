"""Names and TLS in the console (docs/names.md): an environment's naming rule and TLS mode with a form for
maintainers, an app's Domains tab (its names, custom domains with their TXT challenge, verify, remove, add),
and the DNS page (providers for admins — never a secret — and the records the platform owns, with state).

Like every page, these call the API with the signed-in user's token; the API decides who may do what and
the problems it reports are shown next to the field they name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.app_pages import BASE, _base, _page
from yunzhou.web.context import MAINTAINER_ROLES, ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import FieldErrors, errors_by_prefix, field_errors, number_or_text

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

ENV_NAMES = "/projects/{project}/{env}/names"
NAMING_RULE_DEFAULT = "{app}.{env}.{project}.{zone}"
POLICIES = ("sync", "upsert-only")
TLS_KINDS = ("off", "local", "acme", "issuer", "cluster-issuer")
NAMES_FIELDS = ("provider", "zone", "rule", "policy", "ttl", "addresses", "cname", "tls", "tls_issuer")
# API problem paths (``names.addresses.0`` …) → the form field they concern
NAMES_PATHS = (*((f"names.{f}", f) for f in NAMES_FIELDS[:7]), ("tls", "tls"))
RECORD_STATES = ("pending", "synced", "conflict", "error", "retained")


def _text(form: Mapping[str, object], name: str) -> str:
    return str(form.get(name) or "").strip()


def _refused(exc: ApiError, fields: tuple[str, ...], paths: tuple[tuple[str, str], ...]) -> FieldErrors:
    """The API's 409/422 as field errors; a 409 without a path (a clash the rule or host would cause) goes
    next to the field its message starts with, or above the form."""
    if exc.status not in (409, 422):
        raise exc
    problems = exc.problems or [
        FieldProblem(next((p for p, _ in paths if exc.message.startswith(p + " ")), ""), exc.message)
    ]
    return errors_by_prefix(problems, fields, paths)


# -- an environment's names and TLS -----------------------------------------------------------------


def _names_form(env: Json) -> Json:
    """The form's fields from the environment's stored ``names`` and ``tls``."""
    names: Json = env.get("names") or {}
    kind, _, issuer = str(env.get("tls") or "off").partition(":")
    return {
        "provider": names.get("provider", ""),
        "zone": names.get("zone", ""),
        "rule": names.get("rule", ""),
        "policy": names.get("policy", "sync"),
        "ttl": str(names.get("ttl", "")),
        "addresses": ", ".join(names.get("addresses") or []),
        "cname": names.get("cname", ""),
        "tls": kind,
        "tls_issuer": issuer,
        "version": str(env.get("version", "")),
    }


def _providers(ctx: Ctx) -> list[Json]:
    """The DNS providers to choose from: all of an admin's view; for others their names, kinds and zones."""
    if ctx.whoami().get("admin"):
        return ctx.client().list_dns_providers()
    return [{**z, "settings": {"zones": z["zones"]}} for z in ctx.client().list_dns_zones()]


def _admin_providers(ctx: Ctx) -> list[Json] | None:
    """The DNS page's provider table (servers, environments): admins only; None for everyone else."""
    return ctx.client().list_dns_providers() if ctx.whoami().get("admin") else None


def _env_records(ctx: Ctx, project: str, env: str) -> list[Json]:
    prefix = f"{project}/{env}/"
    return [r for r in ctx.client().list_dns_records(project) if str(r["owner"]).startswith(prefix)]


def _names_page(
    ctx: Ctx,
    project: str,
    env: str,
    *,
    form: Json | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    environment = ctx.client().get_environment(project, env)
    return ctx.render(
        "env_names.html", status, project=project, env=environment, form=form or _names_form(environment),
        errors=errors or FieldErrors(), providers=_providers(ctx), policies=POLICIES,
        tls_kinds=TLS_KINDS, default_rule=NAMING_RULE_DEFAULT, records=_env_records(ctx, project, env),
        may_maintain=ctx.may_role(project, MAINTAINER_ROLES),
    )  # fmt: skip


@router.get(ENV_NAMES)
def env_names(ctx: PageCtx, project: str, env: str) -> Response:
    ctx.require_session()
    return _names_page(ctx, project, env)


def names_body(entered: Json) -> tuple[Json | None, str]:
    """(names, tls) for ``PATCH …/names`` from the form: no provider means no records (names null); empty
    optional fields are left out so the API's defaults apply; values go as typed, for the API to judge."""
    kind, issuer = entered["tls"] or "off", entered["tls_issuer"]
    tls = f"{kind}:{issuer}" if kind in ("issuer", "cluster-issuer") else kind
    if not entered["provider"]:
        return None, tls
    names: Json = {"provider": entered["provider"], "zone": entered["zone"]}
    for key in ("rule", "policy", "cname"):
        if entered[key]:
            names[key] = entered[key]
    if entered["ttl"]:
        names["ttl"] = number_or_text(entered["ttl"])
    addresses = entered["addresses"].replace(",", " ").split()
    if addresses:
        names["addresses"] = addresses
    return names, tls


@router.post(ENV_NAMES)
def set_env_names(ctx: PageCtx, form: Form, project: str, env: str) -> Response:
    ctx.require_session()
    entered = {name: _text(form, name) for name in (*NAMES_FIELDS, "version")}
    if _text(form, "off"):  # the "Stop naming" button: no records, TLS as chosen
        entered["provider"] = ""
    names, tls = names_body(entered)
    version = int(entered["version"]) if entered["version"].isdecimal() else None
    try:
        ctx.client().set_environment_names(project, env, version=version, names=names, tls=tls)
    except ApiError as exc:
        errors = _refused(exc, NAMES_FIELDS, NAMES_PATHS)
        if exc.status == 409 and not errors.by_field:  # changed meanwhile: show what it is now
            entered["version"] = str(ctx.client().get_environment(project, env)["version"])
        return _names_page(ctx, project, env, form=entered, errors=errors, status=exc.status)
    return ctx.redirect(f"/projects/{project}/{env}?done=names")


# -- an app's Domains tab ---------------------------------------------------------------------------


def _domains_page(
    ctx: Ctx,
    project: str,
    env: str,
    app: str,
    *,
    errors: FieldErrors | None = None,
    host: str = "",
    status: int = 200,
) -> Response:
    client = ctx.client()
    address = f"{project}/{env}/{app}"
    records = [r for r in client.list_dns_records(project) if r["owner"] == address]
    response = _page(
        ctx, "domains", project, env, app, environment=client.get_environment(project, env),
        records=records, domains=client.list_custom_domains(project, env, app),
        errors=errors or field_errors([], ["host"]), form={"host": host},
    )  # fmt: skip
    response.status_code = status
    return response


@router.get(BASE + "/domains")
def domains(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return _domains_page(ctx, project, env, app)


@router.post(BASE + "/domains")
def add_domain(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    host = _text(form, "host")
    if not host:
        errors = field_errors([FieldProblem("host", ctx.t("domains.host_required"))], ["host"])
        return _domains_page(ctx, project, env, app, errors=errors, host=host, status=422)
    try:
        ctx.client().add_custom_domain(project, env, app, host)
    except ApiError as exc:
        errors = _refused(exc, ("host",), (("host", "host"),))
        if exc.status == 409:  # "host … was asked for by another app": it is about the host
            errors = field_errors([FieldProblem("host", exc.message)], ["host"])
        return _domains_page(ctx, project, env, app, errors=errors, host=host, status=exc.status)
    return ctx.redirect(_base(project, env, app) + "/domains?done=domain_add")


@router.post(BASE + "/domains/verify")
def verify_domain(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    """Asks the names reconciler to look the TXT record up now (also after a failed check)."""
    ctx.require_session()
    ctx.client().verify_custom_domain(project, env, app, _text(form, "host"))
    return ctx.redirect(_base(project, env, app) + "/domains?done=domain_verify")


@router.post(BASE + "/domains/remove")
def remove_domain(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    ctx.client().remove_custom_domain(project, env, app, _text(form, "host"))
    return ctx.redirect(_base(project, env, app) + "/domains?done=domain_removed")


# -- the DNS page -----------------------------------------------------------------------------------


@router.get("/dns")
def dns(ctx: PageCtx, project: str = "", state: str = "") -> Response:
    """Providers (admins only: the API lists them to admins) and the records the platform owns — all for an
    admin, those of the user's projects otherwise."""
    ctx.require_session()
    records = ctx.client().list_dns_records(project or None)
    counts: dict[str, int] = {}
    for record in records:
        counts[record["state"]] = counts.get(record["state"], 0) + 1
    if state in RECORD_STATES:
        records = [r for r in records if r["state"] == state]
    filters: dict[str, Any] = {"project": project, "state": state if state in RECORD_STATES else ""}
    return ctx.render(
        "dns.html", providers=_admin_providers(ctx), records=records, states=RECORD_STATES, counts=counts,
        filters=filters,
    )  # fmt: skip
