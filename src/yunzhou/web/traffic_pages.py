"""An app's Traffic tab: its rollout strategy and traffic policy in words, a form for the common parts
(submitted as a partial settings PATCH, like ``yunzhou settings set``), and Promote / Abort for a canary
or blue-green rollout in progress (``POST …/rollout/promote|abort``, like ``yunzhou rollout``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.app_pages import BASE, _base, _page
from yunzhou.web.context import ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import FieldErrors, to_yaml
from yunzhou.web.traffic_form import (
    ACCESS_DEFAULTS,
    RETRY_CONDITIONS,
    STRATEGIES,
    TrafficForm,
    canary_progress,
    step_line,
    traffic_errors,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

COMMANDS = ("promote", "abort")


def _step_text(step: Mapping[str, Any], t: Callable[..., str]) -> str:
    if step.get("pause") is not None:
        return t("traffic.step_pause", weight=step.get("weight"), pause=step["pause"])
    if step.get("analysis"):
        return t(
            "traffic.step_analysis", weight=step.get("weight"), analysis=step_line(step).partition(" ")[2]
        )
    return t("traffic.step_manual", weight=step.get("weight"))


def policy_summary(settings: Mapping[str, Any], t: Callable[..., str]) -> list[tuple[str, str]]:
    """(label, value) rows saying what the rollout and the common traffic settings do."""
    rollout = settings.get("rollout") or {}
    traffic = settings.get("traffic") or {}
    strategy = str(rollout.get("strategy") or "rolling")
    rows = [(t("traffic.strategy"), t(f"traffic.strategy.{strategy}"))]
    if strategy == "rolling":
        value = t(
            "traffic.surge_value",
            surge=rollout.get("maxSurge", 1),
            unavailable=rollout.get("maxUnavailable", 0),
        )
        rows.append((t("traffic.rolling"), value))
    steps = rollout.get("steps") or []
    if steps:
        rows.append((t("traffic.steps"), "; ".join(_step_text(step, t) for step in steps)))
    if rollout.get("previewHost"):
        rows.append((t("traffic.preview_host"), str(rollout["previewHost"])))
    retries = traffic.get("retries")
    rows.append(
        (
            t("traffic.retries"),
            t(
                "traffic.retries_value",
                attempts=retries.get("attempts"),
                on=", ".join(retries.get("retryOn") or []),
            )
            if retries
            else t("traffic.none"),
        )
    )
    timeouts = traffic.get("timeouts") or {}
    parts = [
        t(f"traffic.timeout_{key}_value", value=timeouts[key])
        for key in ("perTry", "overall")
        if timeouts.get(key)
    ]
    rows.append((t("traffic.timeouts"), ", ".join(parts) or t("traffic.none")))
    rate = traffic.get("rateLimit") or {}
    rate_text = (
        t("traffic.rate_value", rps=rate.get("rps"), burst=rate.get("burst")) if rate.get("rps") else ""
    )
    if rate.get("perCaller"):
        caller = rate["perCaller"]
        rate_text = ", ".join(
            p
            for p in (rate_text, t("traffic.rate_caller", rps=caller.get("rps"), burst=caller.get("burst")))
            if p
        )
    rows.append((t("traffic.rate_limit"), rate_text or t("traffic.none")))
    access = traffic.get("access") or {}
    value = t(f"traffic.access.{access.get('default') or 'allow-environment'}")
    if access.get("allow"):
        value += " · " + t("traffic.allow_value", names=", ".join(access["allow"]))
    if access.get("deny"):
        value += " · " + t("traffic.deny_value", names=", ".join(access["deny"]))
    rows.append((t("traffic.access"), value))
    return rows


@router.get(BASE + "/traffic")
def traffic(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return _traffic_page(ctx, project, env, app)


def _traffic_page(
    ctx: Ctx,
    project: str,
    env: str,
    app: str,
    *,
    form: TrafficForm | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    client = ctx.client()
    settings: Json = client.get_settings(project, env, app)["settings"]
    info = client.get_app(project, env, app)
    shown = {"rollout": settings.get("rollout") or {}, "traffic": settings.get("traffic") or {}}
    response = _page(
        ctx, "traffic", project, env, app,
        summary=policy_summary(settings, ctx.t), progress=canary_progress(info.get("rollout")),
        form=form or TrafficForm.from_settings(settings), errors=errors or FieldErrors(),
        strategies=STRATEGIES, retry_conditions=RETRY_CONDITIONS, access_defaults=ACCESS_DEFAULTS,
        policy_yaml=to_yaml(shown),
    )  # fmt: skip
    response.status_code = status
    return response


@router.post(BASE + "/traffic")
def update_traffic(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    entered = TrafficForm.from_form(form)
    client = ctx.client()
    current = client.get_settings(project, env, app)
    partial, problems = entered.build(current["settings"])
    if problems:  # found in the form itself: nothing is sent
        return _traffic_page(
            ctx, project, env, app, form=entered, errors=traffic_errors(problems), status=422
        )
    try:
        # the version guards against a change made since this page was read
        client.update_settings(project, env, app, partial, current.get("version"))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        found = exc.problems or [FieldProblem("", exc.message)]
        return _traffic_page(
            ctx, project, env, app, form=entered, errors=traffic_errors(found), status=exc.status
        )
    return ctx.redirect(_base(project, env, app) + "/traffic?done=traffic")


def _command(value: object) -> str:
    return str(value) if value in COMMANDS else "promote"


@router.get(BASE + "/traffic/rollout")
def rollout_confirm(ctx: PageCtx, project: str, env: str, app: str, command: str = "promote") -> Response:
    """A confirmation page (works without JavaScript and with the keyboard) before the real POST."""
    ctx.require_session()
    info = ctx.client().get_app(project, env, app)
    return _page(
        ctx,
        "rollout_command",
        project,
        env,
        app,
        command=_command(command),
        progress=canary_progress(info.get("rollout")),
    )


@router.post(BASE + "/traffic/rollout")
def rollout_command(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    command = _command(form.get("command"))
    ctx.client().rollout_command(project, env, app, command)  # 409 without one in progress: an error page
    return ctx.redirect(_base(project, env, app) + f"/traffic?done={command}")
