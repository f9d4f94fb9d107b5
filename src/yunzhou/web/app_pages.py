"""An app's detail page: Overview, Instances, Releases, Builds, Images, Logs, Metrics, Traffic, Autoscaling,
Domains and Settings tabs, and the actions (scale, rollback, routes). Live parts are htmx fragments the page
polls."""

from __future__ import annotations

import shlex
from typing import Any

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.context import ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import field_errors, spec_diff, to_yaml

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

TABS = (
    "overview", "instances", "releases", "builds", "images", "logs", "metrics", "traffic", "autoscaling",
    "domains", "settings",
)  # fmt: skip
LOG_STREAMS = ("stdout", "stderr", "access")
LOG_PAGE = 200
BASE = "/projects/{project}/{env}/apps/{app}"


def _base(project: str, env: str, app: str) -> str:
    return BASE.format(project=project, env=env, app=app)


def _page(
    ctx: Ctx, tab: str, project: str, env: str, app: str, *, template: str = "", **values: Any
) -> Response:
    """The app page with ``tab`` current; its body is ``app_<tab>.html`` or ``template`` (a tab's subpage)."""
    info = ctx.client().get_app(project, env, app)
    return ctx.render(
        template or f"app_{tab}.html",
        tab=tab,
        tabs=TABS,
        project=project,
        env=env,
        app=info,
        base=_base(project, env, app),
        may_write=ctx.may_write(project),
        **values,
    )


@router.get(BASE)
def app_home(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    return ctx.redirect(_base(project, env, app) + "/overview")


@router.get(BASE + "/overview")
def overview(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return _page(ctx, "overview", project, env, app, events=_events(ctx, project, env, app))


EVENTS_SHOWN = 20


def _events(ctx: Ctx, project: str, env: str, app: str) -> list[Json]:
    """The app's timeline (alerts fired/resolved, healing actions), newest first."""
    return ctx.client().app_events(project, env, app, limit=EVENTS_SHOWN)


@router.get(BASE + "/overview/events")
def overview_events(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return ctx.render("fragments/events.html", events=_events(ctx, project, env, app))


@router.get(BASE + "/overview/live")
def overview_live(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    info = ctx.client().get_app(project, env, app)
    return ctx.render("fragments/overview_live.html", app=info)


@router.get(BASE + "/instances")
def instances(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    items = ctx.client().list_instances(project, env, app)
    return _page(ctx, "instances", project, env, app, instances=items)


@router.get(BASE + "/instances/live")
def instances_live(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    items = ctx.client().list_instances(project, env, app)
    return ctx.render("fragments/instances_table.html", instances=items, base=_base(project, env, app))


@router.get(BASE + "/releases")
def releases(
    ctx: PageCtx, project: str, env: str, app: str, a: int | None = None, b: int | None = None
) -> Response:
    ctx.require_session()
    client = ctx.client()
    items = client.list_releases(project, env, app)
    diff: list[tuple[str, str]] | None = None
    if a is not None and b is not None:
        old, new = client.get_release(project, env, app, a), client.get_release(project, env, app, b)
        diff = spec_diff(_spec(old), _spec(new), f"release {a}", f"release {b}")
    elif len(items) >= 2:
        b, a = items[0]["number"], items[1]["number"]
    return _page(ctx, "releases", project, env, app, releases=items, diff=diff, a=a, b=b)


def _spec(release: Json) -> Json:
    return {"score": release.get("score"), "settings": release.get("settings")}


@router.get(BASE + "/releases/{number}")
def release_detail(ctx: PageCtx, project: str, env: str, app: str, number: int) -> Response:
    ctx.require_session()
    release = ctx.client().get_release(project, env, app, number)
    return _page(ctx, "release", project, env, app, release=release, spec=to_yaml(_spec(release)))


@router.get(BASE + "/rollback")
def rollback_confirm(ctx: PageCtx, project: str, env: str, app: str, to: int) -> Response:
    """A confirmation page (works without JavaScript and with the keyboard) before the real POST."""
    ctx.require_session()
    release = ctx.client().get_release(project, env, app, to)
    return _page(ctx, "rollback", project, env, app, release=release)


@router.post(BASE + "/rollback")
def rollback(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    raw = str(form.get("to") or "").strip()
    if not raw.isdecimal():  # a forged or mangled form: say which field, never a 500
        message = ctx.t("form.whole_number")
        return ctx.render(
            "error.html", 422, title=ctx.t("error.status.422"), message=message,
            problems=[FieldProblem("to", message)],
        )  # fmt: skip
    result = ctx.client().rollback(project, env, app, int(raw))
    number = result["release"]["number"]
    return ctx.redirect(_base(project, env, app) + f"/overview?done=rollback&release={number}")


@router.post(BASE + "/scale")
def scale(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    raw = str(form.get("replicas") or "").strip()
    if not raw.isdecimal():
        errors = field_errors([FieldProblem("replicas", ctx.t("form.whole_number"))], ["replicas"])
        return _settings_page(ctx, project, env, app, errors=errors, status=422)
    ctx.client().scale(project, env, app, int(raw))
    return ctx.redirect(_base(project, env, app) + "/overview?done=scale")


@router.get(BASE + "/settings")
def settings(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return _settings_page(ctx, project, env, app)


def _settings_page(
    ctx: Ctx,
    project: str,
    env: str,
    app: str,
    *,
    errors: Any = None,
    status: int = 200,
    routes: Any = None,
    form: Json | None = None,
) -> Response:
    client = ctx.client()
    current = client.get_settings(project, env, app)
    routes = routes if routes is not None else list(current["settings"].get("routes") or [])
    response = _page(
        ctx,
        "settings",
        project,
        env,
        app,
        settings=current,
        routes=routes,
        errors=errors or field_errors([], []),
        # variables (values are not secret) at both levels; secrets: names, versions, who/when — never values
        app_config=client.get_config(project, env, app),
        env_config=client.get_config(project, env),
        secrets=client.list_secrets(project, env, app),
        may_reveal=ctx.may_reveal(project),
        form=form or {},
    )
    response.status_code = status
    return response


@router.post(BASE + "/routes")
def update_routes(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    hosts, paths, ports = form.getlist("host"), form.getlist("path"), form.getlist("port")
    routes: list[Json] = []
    for host, path, port in zip(hosts, paths, ports, strict=False):
        host, path, port = str(host).strip(), str(path).strip() or "/", str(port).strip()
        if not host:
            continue
        route: Json = {"host": host, "path": path}
        if port:
            route["port"] = int(port) if port.isdecimal() else port
        routes.append(route)
    try:
        ctx.client().update_settings(project, env, app, {"routes": routes})
    except ApiError as exc:
        if exc.status != 422:
            raise
        errors = field_errors(exc.problems, ["replicas", "routes"])
        return _settings_page(ctx, project, env, app, errors=errors, status=422, routes=routes)
    return ctx.redirect(_base(project, env, app) + "/overview?done=settings")


# -- logs -----------------------------------------------------------------------------------------


def _log_filters(grep: str, since: str, instance: str, stream: str, where: str = "", until: str = "") -> Json:
    """The API's log query, as ``yunzhou logs`` sends it; ``where`` is the CLI's ``--where`` items, space
    separated (quoted shell-style when a value holds a space): ``level=error user_id=42``."""
    try:
        conditions = shlex.split(where)
    except ValueError:
        conditions = [where]  # an unclosed quote: the API says what is wrong with it
    return {
        "grep": grep or None,
        "since": since or None,
        "until": until or None,
        "instance": instance or None,
        "stream": stream if stream in LOG_STREAMS else None,
        "where": conditions or None,
    }


LOG_FIELDS = ("grep", "since", "until", "where", "instance", "stream")


@router.get(BASE + "/logs")
def logs(
    ctx: PageCtx,
    project: str,
    env: str,
    app: str,
    grep: str = "",
    since: str = "",
    until: str = "",
    where: str = "",
    instance: str = "",
    stream: str = "",
    follow: bool = True,
) -> Response:
    ctx.require_session()
    client = ctx.client()
    filters = _log_filters(grep, since, instance, stream, where, until)
    form = {
        "grep": grep,
        "since": since,
        "until": until,
        "where": where,
        "instance": instance,
        "stream": stream,
    }
    status, errors = 200, field_errors([], LOG_FIELDS)
    try:
        page = client.get_logs(project, env, app, limit=LOG_PAGE, **filters)
    except ApiError as exc:
        if exc.status != 422:
            raise
        # a filter the API cannot read (``--where`` syntax, a time): said next to its field
        problems = [FieldProblem(p.path.removeprefix("query."), p.message) for p in exc.problems]
        status, errors = 422, field_errors(problems or [FieldProblem("", exc.message)], LOG_FIELDS)
        page = {"items": [], "next_after_id": 0}
    instance_ids = [item["id"] for item in client.list_instances(project, env, app)]
    response = _page(
        ctx, "logs", project, env, app,
        records=page["items"], next_after_id=page["next_after_id"], filters=filters, form=form,
        streams=LOG_STREAMS, instance_ids=instance_ids, errors=errors,
        follow=follow and not until and not errors,  # lines before a fixed end never grow
    )  # fmt: skip
    response.status_code = status
    return response


@router.get(BASE + "/logs/more")
def logs_more(
    ctx: PageCtx,
    project: str,
    env: str,
    app: str,
    after_id: int,
    grep: str = "",
    where: str = "",
    instance: str = "",
    stream: str = "",
) -> Response:
    """New records after ``after_id`` plus the poller that asks for the next ones (appended by htmx)."""
    ctx.require_session()
    filters = _log_filters(grep, "", instance, stream, where)
    page = ctx.client().get_logs(project, env, app, after_id=after_id, limit=LOG_PAGE, **filters)
    return ctx.render(
        "fragments/log_more.html",
        records=page["items"],
        next_after_id=page["next_after_id"],
        base=_base(project, env, app),
        form={"grep": grep, "where": where, "instance": instance, "stream": stream},
    )
