"""Alerts: rules (and tunings of the default rules) at global, project, environment or app scope;
receivers; silences; active alerts, history and an app's timeline. See docs/alerts.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.alerts import ALERT_NAME
from yunzhou.domain.errors import invalid
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.alerts import RuleScope

router = APIRouter(tags=["alerts"])
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
EnvQ = Annotated[schemas.Label | None, Query(description="Environment scope (with the project)")]
AppQ = Annotated[schemas.Label | None, Query(description="App scope (needs env)")]
RuleName = Annotated[
    str, Path(pattern=ALERT_NAME.pattern, description="Letters, digits and _ (e.g. HighErrorRate)")
]
RuleDoc = Annotated[
    dict[str, Any],
    Body(description="A Prometheus alerting rule (expr, for, labels, annotations, actions …), or for a "
         "default rule's name a tuning (enabled, threshold, window, for, labels, annotations, actions)"),
]  # fmt: skip
P = "/projects/{project}/alerts"
APP = "/projects/{project}/environments/{env}/apps/{app}"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReceiverPut(_Body):
    kind: Literal["webhook", "email"]
    config: dict[str, Any] = Field(description="webhook: {url}; email: {to, from, smarthost, starttls}")
    route: dict[str, Any] | None = Field(
        default=None, description="{matchers, group_by, group_wait, group_interval, repeat_interval}"
    )


class SilenceCreate(_Body):
    matchers: list[str] = Field(
        min_length=1, description='Alertmanager matchers, e.g. ["app=\\"web\\"", "severity=~crit.*"]'
    )
    duration: str | None = Field(default=None, description="How long from starts_at, e.g. 2h")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    comment: str = ""


def _scope(project: schemas.Label, env: str | None, app: str | None) -> RuleScope:
    if app and not env:
        raise invalid("app", "an app scope needs env too")
    return RuleScope(project, env or "", app or "")


def _silence(cp: ControlPlane, caller: Caller, project: schemas.Label, body: SilenceCreate) -> Any:
    for name, value in (("starts_at", body.starts_at), ("ends_at", body.ends_at)):
        if value is not None and value.tzinfo is None:
            raise invalid(name, "must carry a time zone (e.g. 2026-01-02T03:04:05Z)")
    return cp.alerts.create_silence(
        caller, project, body.matchers, duration=body.duration, starts_at=body.starts_at,
        ends_at=body.ends_at, comment=body.comment,
    )  # fmt: skip


# ---- project scope
@operation(router, "GET", P + "/rules", name="alert.rule.list", permission=Permission.ALERT_READ)
def list_rules(project: schemas.Label, cp: CP, caller: Who, env: EnvQ = None, app: AppQ = None) -> Any:
    return {"items": cp.alerts.list_rules(caller, _scope(project, env, app))}


@operation(router, "PUT", P + "/rules/{name}", name="alert.rule.put", permission=Permission.ALERT_WRITE)
def put_rule(
    project: schemas.Label, name: RuleName, body: RuleDoc, cp: CP, caller: Who, env: EnvQ = None,
    app: AppQ = None,
    version: schemas.Count | None = None,
) -> Any:  # fmt: skip
    return cp.alerts.put_rule(caller, _scope(project, env, app), name, body, version)


@operation(
    router, "DELETE", P + "/rules/{name}", name="alert.rule.delete", permission=Permission.ALERT_WRITE,
    status_code=204, response_class=Response,
)  # fmt: skip
def delete_rule(
    project: schemas.Label, name: RuleName, cp: CP, caller: Who, env: EnvQ = None, app: AppQ = None
) -> Response:
    cp.alerts.delete_rule(caller, _scope(project, env, app), name)
    return Response(status_code=204)


@operation(router, "GET", APP + "/alert-rules", name="alert.rule.effective", permission=Permission.ALERT_READ)
def effective_rules(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": cp.alerts.effective_rules(project, env, app)}


@operation(router, "GET", P, name="alert.list", permission=Permission.ALERT_READ)
def list_alerts(project: schemas.Label, cp: CP, caller: Who, env: EnvQ = None, app: AppQ = None) -> Any:
    return {"items": cp.alerts.active(caller, project, env, app)}


@operation(router, "GET", P + "/history", name="alert.history", permission=Permission.ALERT_READ)
def history(
    project: schemas.Label, cp: CP, caller: Who, env: EnvQ = None, app: AppQ = None,
    kind: Annotated[str | None, Query(pattern="^(alert|action)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, before_id: schemas.Id | None = None,
) -> Any:  # fmt: skip
    return {
        "items": cp.alerts.history(caller, project, env, app, kind=kind, limit=limit, before_id=before_id)
    }


@operation(router, "GET", APP + "/events", name="app.events", permission=Permission.ALERT_READ)
def app_events(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    caller: Who,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    return {"items": cp.alerts.timeline(caller, project, env, app, limit)}


@operation(router, "GET", P + "/receivers", name="alert.receiver.list", permission=Permission.ALERT_READ)
def list_receivers(project: schemas.Label, cp: CP, caller: Who) -> Any:
    return {"items": cp.alerts.list_receivers(caller, project)}


@operation(
    router, "PUT", P + "/receivers/{name}", name="alert.receiver.put", permission=Permission.ALERT_WRITE
)
def put_receiver(project: schemas.Label, name: str, body: ReceiverPut, cp: CP, caller: Who) -> Any:
    return cp.alerts.put_receiver(caller, project, name, body.kind, body.config, body.route)


@operation(
    router, "DELETE", P + "/receivers/{name}", name="alert.receiver.delete",
    permission=Permission.ALERT_WRITE, status_code=204, response_class=Response,
)  # fmt: skip
def delete_receiver(project: schemas.Label, name: str, cp: CP, caller: Who) -> Response:
    cp.alerts.delete_receiver(caller, project, name)
    return Response(status_code=204)


@operation(router, "GET", P + "/silences", name="alert.silence.list", permission=Permission.ALERT_READ)
def list_silences(project: schemas.Label, cp: CP, caller: Who, expired: bool = False) -> Any:
    return {"items": cp.alerts.list_silences(caller, project, include_expired=expired)}


@operation(
    router, "POST", P + "/silences", name="alert.silence.create", permission=Permission.ALERT_SILENCE,
    status_code=201,
)  # fmt: skip
def create_silence(project: schemas.Label, body: SilenceCreate, cp: CP, caller: Who) -> Any:
    return _silence(cp, caller, project, body)


@operation(
    router, "DELETE", P + "/silences/{silence_id}", name="alert.silence.expire",
    permission=Permission.ALERT_SILENCE,
)  # fmt: skip
def expire_silence(project: schemas.Label, silence_id: schemas.Id, cp: CP, caller: Who) -> Any:
    return cp.alerts.expire_silence(caller, project, silence_id)


# ---- global scope (platform admins)
G = "/alerts"


@operation(router, "GET", G, name="alert.global.list", permission=Permission.PLATFORM_ADMIN)
def list_global_alerts(cp: CP, caller: Who) -> Any:
    """Pending and firing alerts of no project: global rules' and the platform's (certificate and domain
    expiry)."""
    return {"items": cp.alerts.active(caller, "")}


@operation(router, "GET", G + "/rules", name="alert.global.rule.list", permission=Permission.PLATFORM_ADMIN)
def list_global_rules(cp: CP, caller: Who) -> Any:
    return {"items": cp.alerts.list_rules(caller, RuleScope())}


@operation(
    router, "PUT", G + "/rules/{name}", name="alert.global.rule.put", permission=Permission.PLATFORM_ADMIN
)
def put_global_rule(
    name: RuleName, body: RuleDoc, cp: CP, caller: Who, version: schemas.Count | None = None
) -> Any:
    return cp.alerts.put_rule(caller, RuleScope(), name, body, version)


@operation(
    router, "DELETE", G + "/rules/{name}", name="alert.global.rule.delete",
    permission=Permission.PLATFORM_ADMIN, status_code=204, response_class=Response,
)  # fmt: skip
def delete_global_rule(name: RuleName, cp: CP, caller: Who) -> Response:
    cp.alerts.delete_rule(caller, RuleScope(), name)
    return Response(status_code=204)


@operation(
    router, "GET", G + "/receivers", name="alert.global.receiver.list", permission=Permission.PLATFORM_ADMIN
)
def list_global_receivers(cp: CP, caller: Who) -> Any:
    return {"items": cp.alerts.list_receivers(caller, "")}


@operation(
    router, "PUT", G + "/receivers/{name}", name="alert.global.receiver.put",
    permission=Permission.PLATFORM_ADMIN,
)  # fmt: skip
def put_global_receiver(name: str, body: ReceiverPut, cp: CP, caller: Who) -> Any:
    return cp.alerts.put_receiver(caller, "", name, body.kind, body.config, body.route)


@operation(
    router, "DELETE", G + "/receivers/{name}", name="alert.global.receiver.delete",
    permission=Permission.PLATFORM_ADMIN, status_code=204, response_class=Response,
)  # fmt: skip
def delete_global_receiver(name: str, cp: CP, caller: Who) -> Response:
    cp.alerts.delete_receiver(caller, "", name)
    return Response(status_code=204)


@operation(
    router, "GET", G + "/silences", name="alert.global.silence.list", permission=Permission.PLATFORM_ADMIN
)
def list_global_silences(cp: CP, caller: Who, expired: bool = False) -> Any:
    return {"items": cp.alerts.list_silences(caller, "", include_expired=expired)}


@operation(
    router, "POST", G + "/silences", name="alert.global.silence.create", permission=Permission.PLATFORM_ADMIN,
    status_code=201,
)  # fmt: skip
def create_global_silence(body: SilenceCreate, cp: CP, caller: Who) -> Any:
    return _silence(cp, caller, "", body)


@operation(
    router, "DELETE", G + "/silences/{silence_id}", name="alert.global.silence.expire",
    permission=Permission.PLATFORM_ADMIN,
)  # fmt: skip
def expire_global_silence(silence_id: schemas.Id, cp: CP, caller: Who) -> Any:
    return cp.alerts.expire_silence(caller, "", silence_id)
