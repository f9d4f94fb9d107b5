"""An app's config variables and secrets on its Settings tab: set/unset variables and set secrets at the
app's or the environment's level, and the audited reveal of one secret (maintainers and above).

A secret's value is only ever sent to the API (the set form) or shown in the one reveal answer; it is
never put back into a form, a redirect, or any other page.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.app_pages import BASE, _base, _page, _settings_page
from yunzhou.web.context import ConsoleRoute, Ctx, Form, PageCtx
from yunzhou.web.forms import field_errors

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

LEVELS = ("app", "env")


def _level(value: object) -> str:
    return str(value) if value in LEVELS else "app"


def _scope(app: str, level: str) -> str | None:
    """The API's ``?app=``: this app's own entries, or None for the environment's."""
    return app if level == "app" else None


def _refused(
    ctx: Ctx, project: str, env: str, app: str, exc: ApiError, field: str, form: dict[str, str]
) -> Response:
    """The API's problems with a form, shown next to the form's main field."""
    problems = exc.problems or [FieldProblem("", exc.message)]
    errors = field_errors([FieldProblem(field, f"{p.path}: {p.message}" if p.path else p.message)
                           for p in problems], [field])  # fmt: skip
    return _settings_page(ctx, project, env, app, errors=errors, status=exc.status, form=form)


@router.post(BASE + "/config")
def set_variable(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    key, value = str(form.get("key") or "").strip(), str(form.get("value") or "")
    level = _level(form.get("level"))
    entered = {"key": key, "value": value, "level": level}
    if not key:
        errors = field_errors([FieldProblem("var_key", ctx.t("config.key_required"))], ["var_key"])
        return _settings_page(ctx, project, env, app, errors=errors, status=422, form=entered)
    try:
        ctx.client().update_config(project, env, _scope(app, level), set={key: value})
    except ApiError as exc:
        if exc.status != 422:
            raise
        return _refused(ctx, project, env, app, exc, "var_key", entered)
    return ctx.redirect(_base(project, env, app) + "/settings?done=config#config")


@router.post(BASE + "/config/unset")
def unset_variable(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    key = str(form.get("key") or "")
    ctx.client().update_config(project, env, _scope(app, _level(form.get("level"))), unset=[key])
    return ctx.redirect(_base(project, env, app) + "/settings?done=config#config")


@router.post(BASE + "/secrets")
def set_secret(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    name, value = str(form.get("name") or "").strip(), str(form.get("value") or "")
    level = _level(form.get("level"))
    entered = {"secret_name": name, "secret_level": level}  # never the value
    if not name or not value:
        errors = field_errors([FieldProblem("secret_name", ctx.t("secrets.required"))], ["secret_name"])
        return _settings_page(ctx, project, env, app, errors=errors, status=422, form=entered)
    try:
        ctx.client().set_secret(project, env, name, value, _scope(app, level))
    except ApiError as exc:
        if exc.status != 422:
            raise
        return _refused(ctx, project, env, app, exc, "secret_name", entered)
    return ctx.redirect(_base(project, env, app) + "/settings?done=secret#secrets")


@router.get(BASE + "/secrets/reveal")
def reveal_confirm(ctx: PageCtx, project: str, env: str, app: str, name: str, level: str = "app") -> Response:
    """A confirmation page before the audited POST (works without JavaScript, like rollback)."""
    ctx.require_session()
    return _page(ctx, "secret_reveal", project, env, app, name=name, level=_level(level), revealed=None)


@router.post(BASE + "/secrets/reveal")
def reveal(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    name, level = str(form.get("name") or ""), _level(form.get("level"))
    revealed = ctx.client().reveal_secret(project, env, name, _scope(app, level))
    # shown once, in this answer only: every console page is Cache-Control: no-store
    return _page(ctx, "secret_reveal", project, env, app, name=name, level=level, revealed=revealed)


@router.get(BASE + "/secrets/unset")
def unset_secret_confirm(
    ctx: PageCtx, project: str, env: str, app: str, name: str, level: str = "app"
) -> Response:
    """A confirmation page before the POST that removes the secret (every version of it)."""
    ctx.require_session()
    return _page(ctx, "secret_unset", project, env, app, name=name, level=_level(level), refused=None)


@router.post(BASE + "/secrets/unset")
def unset_secret(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    name, level = str(form.get("name") or ""), _level(form.get("level"))
    try:
        ctx.client().unset_secret(project, env, name, _scope(app, level))
    except ApiError as exc:
        if exc.status != 409:  # e.g. a deployed app still uses it: said on the confirmation page
            raise
        response = _page(ctx, "secret_unset", project, env, app, name=name, level=level, refused=exc.message)
        response.status_code = 409
        return response
    return ctx.redirect(_base(project, env, app) + "/settings?done=secret_unset#secrets")
