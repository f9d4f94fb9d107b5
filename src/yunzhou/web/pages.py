"""Console pages outside an app: login/logout, language, projects, environments, apps, audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from yunzhou.client import ApiError, YunzhouClient
from yunzhou.web.context import (
    MAINTAINER_ROLES,
    ConsoleRoute,
    Ctx,
    Form,
    Json,
    PageCtx,
    safe_next,
)
from yunzhou.web.forms import FieldErrors
from yunzhou.web.i18n import LANGUAGES

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

AUDIT_OUTCOMES = ("success", "denied", "invalid", "conflict", "not_found", "error")
PROBLEM_STATUSES = frozenset({"failed", "degraded", "crashloop"})
BUSY_STATUSES = frozenset({"pending", "progressing", "removing"})


@router.get("/")
def home(ctx: PageCtx) -> Response:
    return ctx.redirect("/projects" if ctx.session else "/login")


@router.get("/login")
def login_page(ctx: PageCtx, next: str = "/projects", expired: bool = False) -> Response:
    return ctx.render("login.html", next=safe_next(next), expired=expired, errors=[])


@router.post("/login")
def login(ctx: PageCtx, form: Form) -> Response:
    token = str(form.get("token") or "").strip()
    target = safe_next(str(form.get("next") or ""))
    if not token:
        return ctx.render("login.html", 422, next=target, expired=False, errors=[ctx.t("login.required")])
    with ctx.client(token) as client:
        try:
            who = client.whoami()
        except ApiError as exc:
            if exc.status != 401:
                raise
            return ctx.render(
                "login.html", 401, next=target, expired=False, errors=[ctx.t("login.bad_token")]
            )
        language = _saved_language(client)
    response = ctx.redirect(target)
    ctx.start_session(response, token, str(who.get("principal", "")))
    if language is not None:  # the user's choice, kept on the server, wins over this browser's guess
        ctx.remember_language(response, language)
    return response


def _saved_language(client: YunzhouClient) -> str | None:
    """The language this user chose before (in any browser), or None (never chosen, or not readable)."""
    try:
        language = client.get_preferences().get("language")
    except ApiError:
        return None
    return str(language) if language in LANGUAGES else None


@router.post("/logout")
def logout(ctx: PageCtx, form: Form) -> Response:
    """End the session on the server, then drop the cookie: a replayed copy gets the login page."""
    if ctx.session is not None:
        ctx.state.box.end(ctx.session)
    response = ctx.redirect("/login")
    ctx.end_session(response)
    return response


@router.get("/lang/{lang}")
def switch_language(ctx: PageCtx, lang: str, next: str = "/projects", csrf: str = "") -> Response:
    """A plain link. Signed in, it also saves the choice for the user on the server (``PUT
    /whoami/preferences``) when the link carries this browser's CSRF token, so another site cannot;
    the cookie (a year) is the cache that every page reads."""
    response = ctx.redirect(safe_next(next))
    if lang not in LANGUAGES:
        return response
    ctx.remember_language(response, lang)
    if ctx.session is not None and ctx.state.box.csrf_valid(ctx.csrf_seed, csrf):
        try:
            ctx.client().update_preferences(language=lang)
        except ApiError as exc:
            if exc.status == 401:
                raise
    return response


@router.get("/projects")
def projects(ctx: PageCtx) -> Response:
    ctx.require_session()
    return projects_page(ctx)


def projects_page(
    ctx: Ctx, *, errors: FieldErrors | None = None, form: Json | None = None, status: int = 200
) -> Response:
    items = ctx.client().list_projects()
    who = ctx.whoami()
    return ctx.render(
        "projects.html", status, projects=items, who=who, may_create=ctx.may_create(),
        errors=errors or FieldErrors(), form=form or {},
    )  # fmt: skip


def _health(apps: list[Json]) -> str:
    statuses = {str(app.get("status")) for app in apps}
    if not apps:
        return "empty"
    if statuses & PROBLEM_STATUSES:
        return "degraded"
    if statuses & BUSY_STATUSES:
        return "progressing"
    return "healthy"


@router.get("/projects/{project}")
def environments(ctx: PageCtx, project: str) -> Response:
    ctx.require_session()
    return environments_page(ctx, project)


def environments_page(
    ctx: Ctx, project: str, *, errors: FieldErrors | None = None, form: Json | None = None, status: int = 200
) -> Response:
    client = ctx.client()
    info = client.get_project(project)
    rows: list[dict[str, Any]] = []
    for env in client.list_environments(project):
        apps = client.list_apps(project, env["name"])
        rows.append({**env, "app_count": len(apps), "health": _health(apps)})
    may_create_env = ctx.may_role(project, MAINTAINER_ROLES)
    return ctx.render(
        "environments.html", status, project=info, environments=rows, may_write=ctx.may_write(project),
        may_create_env=may_create_env, clusters=client.list_clusters() if may_create_env else [],
        errors=errors or FieldErrors(), form=form or {},
    )  # fmt: skip


@router.get("/projects/{project}/{env}")
def apps(ctx: PageCtx, project: str, env: str) -> Response:
    ctx.require_session()
    client = ctx.client()
    environment = client.get_environment(project, env)
    items = client.list_apps(project, env)
    return ctx.render(
        "apps.html", project=project, env=environment, apps=items, may_write=ctx.may_write(project),
        may_maintain=ctx.may_role(project, MAINTAINER_ROLES),
    )  # fmt: skip


@router.get("/audit")
def audit(
    ctx: PageCtx,
    project: str = "",
    actor: str = "",
    action: str = "",
    outcome: str = "",
    before_id: int | None = None,
    limit: int = 50,
) -> Response:
    ctx.require_session()
    limit = max(1, min(limit, 500))
    filters = {"project": project, "actor": actor, "action": action, "outcome": outcome}
    events = ctx.client().list_audit(
        **{key: value for key, value in filters.items() if value}, limit=limit, before_id=before_id
    )
    older = events[-1]["id"] if len(events) == limit else None
    return ctx.render(
        "audit.html", events=events, filters=filters, outcomes=AUDIT_OUTCOMES, older=older, limit=limit
    )


def render_error(ctx: Ctx, status: int, message: str) -> Response:
    return ctx.render("error.html", status, title=ctx.t("error.title"), message=message)
