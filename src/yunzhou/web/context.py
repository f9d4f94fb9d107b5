"""What every console page needs: the caller's session and language, an API client acting with the
caller's own token, CSRF checks, template rendering, and API errors turned into pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import anyio.from_thread
import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from yunzhou.client import ApiError, YunzhouClient
from yunzhou.web.i18n import LANG_COOKIE, LANGUAGES, negotiate, translate
from yunzhou.web.session import CSRF_COOKIE, SESSION_COOKIE, Session, SessionBox

Json = dict[str, Any]
WRITE_ROLES = frozenset({"developer", "maintainer", "owner"})
MAINTAINER_ROLES = frozenset({"maintainer", "owner"})  # Permission.SECRET_REVEAL, Permission.ENV_WRITE
OWNER_ROLES = frozenset({"owner"})  # Permission.MEMBER_WRITE
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
INTERNAL_API_URL = "http://yunzhou-console.internal"  # a name for in-process calls; never resolved


class ConsoleClient(YunzhouClient):
    """The typed client plus the one call the console needs that the CLI does not: upload archive bytes."""

    def upload_archive(self, data: bytes) -> str:
        result = self._request(
            "POST", "/artifacts", content=data, headers={"Content-Type": "application/gzip"}, timeout=300.0
        )
        return str(result["digest"])


class InProcessApi(httpx.BaseTransport):
    """Carries the console's API calls straight into the ASGI app it is mounted in, on that app's own event
    loop — never over a network address (least of all one taken from the request's Host header, which
    would send the user's token wherever a crafted Host points). Called from the worker threads sync
    console handlers run in."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500, as over a socket

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            answer = await self._asgi.handle_async_request(inner)
            content = await answer.aread()
            return httpx.Response(answer.status_code, headers=answer.headers, content=content)

        return anyio.from_thread.run(call)


class NotLoggedIn(Exception):
    """The request has no valid session (or the API no longer accepts its token)."""


class CsrfRejected(Exception):
    """A form came back without the CSRF token this browser was given."""


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("yunzhou.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = human_bytes
    env.filters["when"] = short_time
    env.filters["span"] = span
    env.filters["tojson_attr"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    return env


class ConsoleState:
    """Created once per API app by ``mount_console``; kept in ``app.state.console``."""

    def __init__(self, box: SessionBox | None = None) -> None:
        self.box = box or SessionBox()
        self.templates = _templates()
        # Where the console's API calls go, with the user's own token: by default into this same app in
        # process (InProcessApi); tests may set another transport. Never derived from the request.
        self.api_url = INTERNAL_API_URL
        self.transport: httpx.BaseTransport | None = None


class Ctx:
    """One request's view of the console."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.state: ConsoleState = request.app.state.console
        self.lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        self.session: Session | None = self.state.box.open(request.cookies.get(SESSION_COOKIE))
        seed = request.cookies.get(CSRF_COOKIE)
        self.new_csrf_seed = None if seed else self.state.box.new_csrf_seed()
        self.csrf_seed = seed or self.new_csrf_seed or ""
        self._client: ConsoleClient | None = None
        self._whoami: Json | None = None

    # -- identity ---------------------------------------------------------------------------------

    def require_session(self) -> Session:
        if self.session is None:
            raise NotLoggedIn
        return self.session

    def client(self, token: str | None = None) -> ConsoleClient:
        if token is not None:
            return self._make_client(token)
        if self._client is None:
            self._client = self._make_client(self.require_session().token)
        return self._client

    def _make_client(self, token: str) -> ConsoleClient:
        transport = self.state.transport or InProcessApi(self.request.app)
        return ConsoleClient(self.state.api_url, token, transport=transport, retries=0, timeout=60.0)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def whoami(self) -> Json:
        if self._whoami is None:
            self._whoami = self.client().whoami()
        return self._whoami

    def may_write(self, project: str) -> bool:
        """Whether to show deploy/scale/rollback controls; the API decides for real on every request."""
        return self.may_role(project, WRITE_ROLES)

    def may_role(self, project: str, roles: frozenset[str]) -> bool:
        """Whether to show a control that needs write scope and one of ``roles`` in ``project``."""
        who = self.whoami()
        if who.get("admin"):
            return True
        return "write" in who.get("scopes", []) and who.get("roles", {}).get(project) in roles

    def may_create(self) -> bool:
        """Whether to show forms that need only write scope (a new project, a token with write)."""
        who = self.whoami()
        return bool(who.get("admin")) or "write" in who.get("scopes", [])

    def may_reveal(self, project: str) -> bool:
        """Whether to show Reveal buttons for secrets; the API decides (and audits) for real."""
        return self.may_role(project, MAINTAINER_ROLES)

    # -- forms ------------------------------------------------------------------------------------

    @property
    def csrf_token(self) -> str:
        return self.state.box.csrf_token(self.csrf_seed)

    # -- rendering --------------------------------------------------------------------------------

    def t(self, key: str, **values: Any) -> str:
        return translate(self.lang, key, **values)

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        page = self.state.templates.get_template(template).render(
            _=self.t,
            lang=self.lang,
            languages=LANGUAGES,
            ctx=self,
            session=self.session,
            csrf_token=self.csrf_token,
            csrf_field=CSRF_FIELD,
            here=self.here(),
            **values,
        )
        response = HTMLResponse(page, status_code=status_code)
        self.finish(response)
        return response

    def here(self) -> str:
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")

    def finish(self, response: Response) -> None:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Language"] = self.lang
        if self.new_csrf_seed is not None:
            response.set_cookie(
                CSRF_COOKIE, self.new_csrf_seed, httponly=True, samesite="strict", secure=self._secure()
            )

    def _secure(self) -> bool:
        return self.request.url.scheme == "https"

    def redirect(self, url: str) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        self.finish(response)
        return response

    def start_session(self, response: Response, token: str, principal: str) -> None:
        value = self.state.box.seal(token, principal)
        response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="lax", secure=self._secure())

    def remember_language(self, response: Response, lang: str) -> None:
        """Cache the language in this browser for a year (the user's saved preference is the source)."""
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True, secure=self._secure()
        )

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE)


def get_ctx(request: Request) -> Iterator[Ctx]:
    ctx = Ctx(request)
    try:
        yield ctx
    finally:
        ctx.close()


SESSIONLESS_FORMS = frozenset({"/login"})  # the one form sent before signing in


async def checked_form(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token (a form field, or a header for htmx).

    The session is checked before the body is read (but on the login form), so a stranger's upload is
    refused unread; the API app bounds every body's size (api/limits.py, docs/api.md#limits)."""
    box: SessionBox = request.app.state.console.box
    if request.url.path not in SESSIONLESS_FORMS and box.open(request.cookies.get(SESSION_COOKIE)) is None:
        raise NotLoggedIn
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not box.csrf_valid(request.cookies.get(CSRF_COOKIE), sent if isinstance(sent, str) else None):
        raise CsrfRejected
    return form


PageCtx = Annotated[Ctx, Depends(get_ctx)]
Form = Annotated[FormData, Depends(checked_form)]


def safe_next(target: str | None, default: str = "/projects") -> str:
    """Only same-site paths: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def human_bytes(value: object) -> str:
    if not isinstance(value, int | float):
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"  # pragma: no cover


def short_time(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


SPAN_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def span(value: object) -> str:
    """A length of time in seconds in its two largest units: ``42s``, ``3m 5s``, ``2h``, ``12d 3h``."""
    if not isinstance(value, int | float) or value < 0:
        return "—"
    seconds = int(value)
    for index, (unit, length) in enumerate(SPAN_UNITS):
        if seconds >= length or unit == "s":
            first = f"{seconds // length}{unit}"
            if unit != "s":
                small, small_length = SPAN_UNITS[index + 1]
                second = seconds % length // small_length
                if second:
                    return f"{first} {second}{small}"
            return first
    return "—"  # pragma: no cover


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """Turns what can go wrong in any console page into a page: login, CSRF, and the API's refusals."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except NotLoggedIn:
                return _to_login(request)
            except CsrfRejected:
                ctx = Ctx(request)
                return ctx.render(
                    "error.html", 403, title=ctx.t("error.csrf.title"), message=ctx.t("error.csrf")
                )
            except ApiError as exc:
                if exc.status == 401:
                    return _to_login(request, expired=True)
                ctx = Ctx(request)
                status = exc.status if 400 <= exc.status < 600 else 502
                return ctx.render(
                    "error.html",
                    status,
                    title=ctx.t(f"error.status.{exc.status}")
                    if exc.status in (403, 404, 409)
                    else ctx.t("error.title"),
                    message=exc.message,
                    problems=exc.problems,
                    request_id=exc.request_id,
                )

        return handle


def _to_login(request: Request, *, expired: bool = False) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("HX-Request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    else:
        suffix = "&expired=1" if expired else ""
        response = RedirectResponse(f"/login?next={quote(target, safe='')}{suffix}", status_code=303)
    Ctx.end_session(response)
    return response
