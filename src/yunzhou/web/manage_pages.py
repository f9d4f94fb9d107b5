"""Management pages: create projects, add/remove project members, create environments, and the caller's
API tokens (create — the secret shown once —, list, revoke).

Every control is shown only to roles the API would allow, and the API decides for real: a forged form
gets the API's 403. Problems the API reports are shown next to the field they concern.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.context import OWNER_ROLES, ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import FieldErrors, field_errors
from yunzhou.web.pages import environments_page, projects_page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

ROLES = ("viewer", "developer", "maintainer", "owner")
SCOPES = ("read", "write", "admin", "metrics")
# "-" is no valid project or environment name, so these paths never shadow /projects/{p}/{env}
MEMBERS = "/projects/{project}/-/members"
ENVIRONMENTS = "/projects/{project}/-/environments"
MAX_EXPIRY_DAYS = 3650


def refused(exc: ApiError, paths: Mapping[str, str], fallback: str) -> FieldErrors:
    """The API's 409/422 answer as field errors: problem paths mapped to form fields (``paths``); a
    problem without a known path (e.g. "already exists") goes next to ``fallback``."""
    if exc.status not in (409, 422):
        raise exc
    problems: list[FieldProblem] = []
    for problem in exc.problems or [FieldProblem("", exc.message)]:
        path = problem.path.removeprefix("body.")
        field = paths.get(path) or paths.get(path.split(".")[0])
        if field is None:
            field, message = fallback, f"{path}: {problem.message}" if path else problem.message
        else:
            message = problem.message
        problems.append(FieldProblem(field, message))
    return field_errors(problems, set(paths.values()) | {fallback})


def _text(form: Mapping[str, object], name: str) -> str:
    return str(form.get(name) or "").strip()


# -- projects ---------------------------------------------------------------------------------------


@router.post("/projects")
def create_project(ctx: PageCtx, form: Form) -> Response:
    ctx.require_session()
    entered = {"name": _text(form, "name"), "display_name": _text(form, "display_name")}
    if not entered["name"]:
        errors = field_errors([FieldProblem("name", ctx.t("manage.name_required"))], ["name"])
        return projects_page(ctx, errors=errors, form=entered, status=422)
    try:
        ctx.client().create_project(entered["name"], entered["display_name"] or None)
    except ApiError as exc:
        errors = refused(exc, {"name": "name", "display_name": "display_name"}, "name")
        return projects_page(ctx, errors=errors, form=entered, status=exc.status)
    return ctx.redirect(f"/projects/{entered['name']}?done=project")


# -- environments -----------------------------------------------------------------------------------


@router.post(ENVIRONMENTS)
def create_environment(ctx: PageCtx, form: Form, project: str) -> Response:
    ctx.require_session()
    entered = {k: _text(form, k) for k in ("name", "target", "namespace")}
    target = entered["target"] or "local"
    problems = []
    if not entered["name"]:
        problems.append(FieldProblem("name", ctx.t("manage.name_required")))
    if target == "local" and entered["namespace"]:
        problems.append(FieldProblem("namespace", ctx.t("envs.namespace_local")))
    if problems:
        errors = field_errors(problems, ["name", "namespace"])
        return environments_page(ctx, project, errors=errors, form=entered, status=422)
    try:
        ctx.client().create_environment(project, entered["name"], target, entered["namespace"] or None)
    except ApiError as exc:
        errors = refused(exc, {"name": "name", "target": "target", "namespace": "namespace"}, "name")
        return environments_page(ctx, project, errors=errors, form=entered, status=exc.status)
    return ctx.redirect(f"/projects/{project}?done=env")


# -- members ----------------------------------------------------------------------------------------


def _members_page(
    ctx: Ctx, project: str, *, errors: FieldErrors | None = None, form: Json | None = None, status: int = 200
) -> Response:
    client = ctx.client()
    info = client.get_project(project)
    return ctx.render(
        "members.html", status, project=info, members=client.list_members(project), roles=ROLES,
        may_manage=ctx.may_role(project, OWNER_ROLES), errors=errors or FieldErrors(), form=form or {},
    )  # fmt: skip


@router.get(MEMBERS)
def members(ctx: PageCtx, project: str) -> Response:
    ctx.require_session()
    return _members_page(ctx, project)


@router.post(MEMBERS)
def set_member(ctx: PageCtx, form: Form, project: str) -> Response:
    ctx.require_session()
    entered = {"principal": _text(form, "principal"), "role": _text(form, "role")}
    if not entered["principal"]:
        errors = field_errors([FieldProblem("principal", ctx.t("members.principal_required"))], ["principal"])
        return _members_page(ctx, project, errors=errors, form=entered, status=422)
    try:
        ctx.client().set_member(project, entered["principal"], entered["role"])
    except ApiError as exc:
        errors = refused(exc, {"principal": "principal", "role": "role"}, "principal")
        return _members_page(ctx, project, errors=errors, form=entered, status=exc.status)
    return ctx.redirect(MEMBERS.format(project=project) + "?done=member")


@router.post(MEMBERS + "/remove")
def remove_member(ctx: PageCtx, form: Form, project: str) -> Response:
    ctx.require_session()
    try:
        ctx.client().remove_member(project, _text(form, "principal"))
    except ApiError as exc:
        if exc.status != 409:  # "must keep at least one owner": shown on the page, not as an error page
            raise
        errors = field_errors([FieldProblem("", exc.message)], [])
        return _members_page(ctx, project, errors=errors, status=409)
    return ctx.redirect(MEMBERS.format(project=project) + "?done=member_removed")


# -- tokens -----------------------------------------------------------------------------------------


def _tokens_page(
    ctx: Ctx,
    *,
    errors: FieldErrors | None = None,
    form: Json | None = None,
    created: Json | None = None,
    status: int = 200,
) -> Response:
    who = ctx.whoami()
    mine = set(who.get("scopes", []))
    # a token never grants more than its creator has (admin implies write implies read); creating one
    # needs write, so a read-only session is offered no form
    grantable = [s for s in SCOPES if "admin" in mine or s in mine or (s == "read" and "write" in mine)]
    if not mine & {"admin", "write"}:
        grantable = []
    return ctx.render(
        "tokens.html", status, tokens=ctx.client().list_tokens(), who=who, scopes=grantable,
        errors=errors or FieldErrors(), form=form or {"scopes": ["read"]}, created=created,
    )  # fmt: skip


@router.get("/tokens")
def tokens(ctx: PageCtx) -> Response:
    ctx.require_session()
    return _tokens_page(ctx)


@router.post("/tokens")
def create_token(ctx: PageCtx, form: Form) -> Response:
    ctx.require_session()
    entered: Json = {
        "name": _text(form, "name"),
        "scopes": [str(s) for s in form.getlist("scopes")],
        "expires_days": _text(form, "expires_days"),
        "principal": _text(form, "principal"),
    }
    problems: list[FieldProblem] = []
    if not entered["name"]:
        problems.append(FieldProblem("name", ctx.t("manage.name_required")))
    if not entered["scopes"]:
        problems.append(FieldProblem("scopes", ctx.t("tokens.scopes_required")))
    expires: int | None = None
    if entered["expires_days"]:
        days = entered["expires_days"]
        if not days.isdecimal() or not 1 <= int(days) <= MAX_EXPIRY_DAYS:
            problems.append(FieldProblem("expires_days", ctx.t("tokens.expiry_range", max=MAX_EXPIRY_DAYS)))
        else:
            expires = int(days) * 86400
    if problems:
        errors = field_errors(problems, ["name", "scopes", "expires_days"])
        return _tokens_page(ctx, errors=errors, form=entered, status=422)
    try:
        created = ctx.client().create_token(
            entered["name"], entered["scopes"], expires, entered["principal"] or None
        )
    except ApiError as exc:
        paths = {
            "name": "name",
            "scopes": "scopes",
            "expires_in_seconds": "expires_days",
            "principal": "principal",
        }
        if exc.status != 403:
            errors = refused(exc, paths, "name")
        else:  # more scopes than the creator has, or another principal without being an admin
            field = "principal" if entered["principal"] and not ctx.whoami().get("admin") else "scopes"
            errors = field_errors([FieldProblem(field, exc.message)], [field])
        return _tokens_page(ctx, errors=errors, form=entered, status=exc.status)
    # the secret is in this answer only (every console page is Cache-Control: no-store)
    return _tokens_page(ctx, created=created, status=201)


@router.post("/tokens/revoke")
def revoke_token(ctx: PageCtx, form: Form) -> Response:
    ctx.require_session()
    ctx.client().revoke_token(_text(form, "id"))
    return ctx.redirect("/tokens?done=token_revoked")
