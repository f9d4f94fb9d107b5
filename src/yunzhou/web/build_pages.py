"""An app's Builds and Images tabs: its build jobs (what ``yunzhou builds`` lists), a build's page with its
progress, its log followed live (htmx asks for the bytes after the last offset every second, like the Logs
tab) and Cancel; and its images in the registry (what ``yunzhou images`` lists)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.web.app_pages import BASE, _base, _page
from yunzhou.web.context import ConsoleRoute, Ctx, Form, Json, PageCtx

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

BUILD_ID = re.compile(r"^b[0-9a-f]{12}$")  # the API's own pattern: anything else is no build
ACTIVE_STATES = frozenset({"queued", "running"})
LOG_PAGES_SHOWN = 8  # API log pages (256 KiB each) a build's page starts with; the poller reads the rest


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _shown(build: Json, now: datetime) -> Json:
    """The build with what its row shows besides the API's fields: how long it ran (so far) and a short
    image digest."""
    started, finished = _moment(build.get("started_at")), _moment(build.get("finished_at"))
    duration = ((finished or now) - started).total_seconds() if started else None
    digest = str(build.get("image_digest") or "")
    return {**build, "duration": duration, "digest_short": digest[:19] + "…" if digest else ""}


@router.get(BASE + "/builds")
def builds(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    items = ctx.client().list_builds(project, env, app)
    now = datetime.now(UTC)
    return _page(ctx, "builds", project, env, app, builds=[_shown(b, now) for b in items])


def _build(ctx: Ctx, project: str, env: str, app: str, build_id: str) -> Json:
    """The build, if it is one of this app's: anything else (a malformed id, another app's build, one the
    caller may not see) is the console's 404 page."""
    build: Json | None = ctx.client().get_build(build_id) if BUILD_ID.match(build_id) else None
    if build is None or build.get("address") != f"{project}/{env}/{app}":
        raise ApiError(404, "not_found", ctx.t("build.not_found", id=build_id))
    return build


def _log_start(ctx: Ctx, build_id: str) -> tuple[str, int, bool]:
    """The log's first pages: its text, the offset to go on from, and whether that is all of it."""
    chunks, offset, done = [], 0, False
    for _ in range(LOG_PAGES_SHOWN):
        page = ctx.client().build_log(build_id, offset)
        chunks.append(str(page["text"]))
        done = bool(page["done"])
        if done or page["next_offset"] == offset:
            break
        offset = int(page["next_offset"])
    return "".join(chunks), offset, done


@router.get(BASE + "/builds/{build_id}")
def build_detail(ctx: PageCtx, project: str, env: str, app: str, build_id: str) -> Response:
    ctx.require_session()
    build = _shown(_build(ctx, project, env, app, build_id), datetime.now(UTC))
    text, offset, done = _log_start(ctx, build_id)
    stoppable = build["state"] in ACTIVE_STATES and not build["cancel_requested"]  # not asked already
    return _page(
        ctx, "builds", project, env, app, template="app_build.html",
        build=build, log_text=text, next_offset=offset, follow=not done,
        may_cancel=stoppable and ctx.may_write(project),
    )  # fmt: skip


@router.get(BASE + "/builds/{build_id}/log")
def build_log_more(
    ctx: PageCtx, project: str, env: str, app: str, build_id: str, offset: int = 0, state: str = ""
) -> Response:
    """The log after ``offset`` plus the poller that asks for the rest (appended by htmx). When a build the
    page showed as queued or running has ended, the whole page reloads to show how it ended."""
    ctx.require_session()
    _build(ctx, project, env, app, build_id)
    page = ctx.client().build_log(build_id, offset)
    if page["done"] and state in ACTIVE_STATES:
        response = Response(status_code=200, headers={"HX-Refresh": "true"})
        ctx.finish(response)
        return response
    return ctx.render(
        "fragments/build_log_more.html",
        text=page["text"],
        next_offset=page["next_offset"],
        follow=not page["done"],
        build={"id": build_id, "state": state},
        base=_base(project, env, app),
    )


@router.post(BASE + "/builds/{build_id}/cancel")
def cancel_build(ctx: PageCtx, form: Form, project: str, env: str, app: str, build_id: str) -> Response:
    """Like ``yunzhou build cancel``: a queued build ends at once, a running one within seconds."""
    ctx.require_session()
    _build(ctx, project, env, app, build_id)
    ctx.client().cancel_build(build_id)  # the API checks the role (developer or higher) and audits it
    return ctx.redirect(_base(project, env, app) + f"/builds/{build_id}?done=build_cancel")


@router.get(BASE + "/images")
def images(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    unavailable = ""
    try:
        items = ctx.client().list_images(project, env, app)
    except ApiError as exc:
        if exc.status != 503:  # 503: the registry cannot be reached; said in the tab, the app still shown
            raise
        items, unavailable = [], exc.message
    shown = [{**image, "digest_short": str(image.get("digest", ""))[:19] + "…"} for image in items]
    return _page(ctx, "images", project, env, app, images=shown, unavailable=unavailable)
