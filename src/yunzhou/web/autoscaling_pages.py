"""An app's Autoscaling tab: the policy in force (from the app's settings), a form that changes it (a
partial settings PATCH, as ``yunzhou settings set`` sends), and its recent decisions (time, mode, current →
desired, applied, reason, inputs) from ``GET …/autoscaling/decisions``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response

from yunzhou.client import ApiError
from yunzhou.domain.errors import FieldProblem
from yunzhou.web.app_pages import BASE, _base, _page
from yunzhou.web.autoscaling_form import METRIC_TYPES, AutoscalingForm, autoscaling_errors
from yunzhou.web.context import ConsoleRoute, Ctx, Form, Json, PageCtx
from yunzhou.web.forms import FieldErrors

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

DECISIONS_SHOWN = 50
TARGET_VALUES = ("averageUtilization", "averageValue", "value")


def _metric(metric: Json) -> str:
    """``rps AverageValue 50`` / ``custom orders_per_second AverageValue 100`` (the spec's own words)."""
    target = metric.get("target") or {}
    value = next((target[key] for key in TARGET_VALUES if key in target), "")
    parts = [metric.get("type"), metric.get("name"), target.get("type"), value]
    return " ".join(str(part) for part in parts if part not in (None, ""))


def policy_summary(policy: Json | None, t: Callable[..., str]) -> list[tuple[str, str]]:
    """(label, value) rows that say what the ``autoscaling:`` settings do; [] without a policy."""
    if not policy:
        return []
    rows = [
        (
            t("autoscale.range"),
            t("autoscale.range_value", min=policy.get("minReplicas", 1), max=policy.get("maxReplicas", "")),
        ),
        (t("autoscale.metrics"), ", ".join(_metric(m) for m in policy.get("metrics") or []) or "—"),
    ]
    predictive = policy.get("predictive")
    if predictive:
        horizon = int(predictive.get("startupSeconds", 30)) + int(predictive.get("marginSeconds", 30))
        model, metric = predictive.get("model", "seasonal-quantile"), predictive.get("metric", "rps")
        value = t("autoscale.predictive_value", model=model, metric=metric, horizon=horizon)
        rows.append((t("autoscale.predictive"), value))
    schedules = policy.get("schedules") or []
    names = ", ".join(str(s.get("name") or s.get("cron", "")) for s in schedules)
    rows.append((t("autoscale.schedules"), names or t("autoscale.off")))
    zero = policy.get("scaleToZero") or {}
    zero_text = (
        t("autoscale.scale_to_zero_value", idle=zero.get("idleSeconds", 600))
        if zero.get("enabled")
        else t("autoscale.off")
    )
    rows.append((t("autoscale.scale_to_zero"), zero_text))
    return rows


def _inputs(inputs: Any) -> str:
    return json.dumps(inputs, ensure_ascii=False, sort_keys=True, indent=1) if inputs else ""


@router.get(BASE + "/autoscaling")
def autoscaling(ctx: PageCtx, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    return _autoscaling_page(ctx, project, env, app)


def _autoscaling_page(
    ctx: Ctx,
    project: str,
    env: str,
    app: str,
    *,
    form: AutoscalingForm | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    client = ctx.client()
    policy = client.get_settings(project, env, app)["settings"].get("autoscaling")
    decisions = [
        {**d, "inputs_text": _inputs(d.get("inputs"))}
        for d in client.autoscale_decisions(project, env, app, limit=DECISIONS_SHOWN)
    ]
    form = form or AutoscalingForm.from_policy(policy)
    response = _page(
        ctx, "autoscaling", project, env, app, policy=policy_summary(policy, ctx.t), decisions=decisions,
        form=form, errors=errors or FieldErrors(), metric_types=METRIC_TYPES,
        kept=[_metric(m) for m in form.kept],
    )  # fmt: skip
    response.status_code = status
    return response


@router.post(BASE + "/autoscaling")
def update_autoscaling(ctx: PageCtx, form: Form, project: str, env: str, app: str) -> Response:
    ctx.require_session()
    client = ctx.client()
    current = client.get_settings(project, env, app)
    entered = AutoscalingForm.from_form(form, current["settings"].get("autoscaling"))
    partial, problems = entered.build()
    if problems:  # found in the form itself: nothing is sent
        errors = autoscaling_errors(problems)
        return _autoscaling_page(ctx, project, env, app, form=entered, errors=errors, status=422)
    try:
        client.update_settings(project, env, app, partial, current.get("version"))
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        errors = autoscaling_errors(exc.problems or [FieldProblem("", exc.message)])
        return _autoscaling_page(ctx, project, env, app, form=entered, errors=errors, status=exc.status)
    return ctx.redirect(_base(project, env, app) + "/autoscaling?done=autoscaling")
