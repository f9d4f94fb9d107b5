"""Healing actions bound to rules. Each goes through the ordinary use-cases (AppService.rollback/scale
write desired state + audit; the reconciler does the work), acting as the principal ``alert:<name>``, and is
recorded in the app's timeline and the audit trail with the alert as the reason. A cool-down per (rule,
app) and a cap per hour bound them; a silenced alert takes no action."""

from __future__ import annotations

import logging
from typing import Any

from yunzhou.domain.access import Scope
from yunzhou.domain.alerts import AlertState, HealingAction
from yunzhou.domain.errors import YunzhouError
from yunzhou.services import ControlPlane
from yunzhou.services.alerts import RuleInstance, where_of
from yunzhou.services.context import Caller

log = logging.getLogger("yunzhou.observe.alerts")


class Healer:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def consider(self, inst: RuleInstance, alert: AlertState, *, just_fired: bool) -> None:
        """Run the rule's actions for one firing alert, if its budget allows. Refusals are recorded only
        when the alert has just fired (so a long-firing alert does not fill the timeline)."""
        if not inst.rule.actions:
            return
        project, env, app = where_of(inst.scope, alert.labels)
        if not (project and env and app):
            if just_fired:
                log.warning("alert %s names no app (labels project, env, app): no action", inst.rule.alert)
            return
        alerts = self.cp.alerts
        left, why_not = alerts.action_budget(inst.key, project, env, app, inst.rule)
        for action in inst.rule.actions:
            if left <= 0:  # every action of the pass counts against the hourly cap, not only the first
                if just_fired:
                    alerts.record_action(
                        _caller(alert), inst.key, alert, (project, env, app), action.type, "skipped",
                        {"reason": why_not},
                    )  # fmt: skip
                continue
            outcome, detail = self._run(action, alert, project, env, app)
            if outcome != "skipped":
                left -= 1
            if outcome == "skipped" and not just_fired:
                continue  # said once when the alert fired; a long-firing alert does not fill the timeline
            detail["because"] = alert.annotations.get("summary") or alert.labels.get("alertname", "")
            alerts.record_action(
                _caller(alert), inst.key, alert, (project, env, app), action.type, outcome, detail
            )
            log.info(
                "alert %s on %s/%s/%s: %s %s %s",
                inst.rule.alert,
                project,
                env,
                app,
                action.type,
                outcome,
                detail,
            )

    def _run(
        self, action: HealingAction, alert: AlertState, project: str, env: str, app: str
    ) -> tuple[str, dict[str, Any]]:
        caller = _caller(alert)
        try:
            if action.type == "rollback":
                target, why_not = self.cp.alerts.rollback_target(project, env, app)
                if target is None:
                    return "skipped", {"reason": why_not}
                result = self.cp.apps.rollback(caller, project, env, app, target)
                return "done", {
                    "to_release": target,
                    "release": result["release"]["number"],
                    "rollout": result["rollout"]["id"],
                }
            if action.type == "scale":
                current = int(self.cp.apps.get(project, env, app)["replicas"])
                wanted = min(current + action.by, action.max)
                if wanted <= current:
                    return "skipped", {"reason": f"already at {current} replicas (max {action.max})"}
                self.cp.apps.scale(caller, project, env, app, wanted, None)
                return "done", {"replicas": wanted, "previous": current}
            if action.type == "restart":
                reason = alert.labels.get("alertname", "alert")
                result = self.cp.alerts.restart(caller, project, env, app, reason)
                return "done", {"release": result["release"]["number"], "rollout": result["rollout"]["id"]}
            return "skipped", {"reason": f"{action.type} is not supported by this server"}
        except YunzhouError as exc:
            return "failed", {"reason": exc.message}


def _caller(alert: AlertState) -> Caller:
    name = alert.labels.get("alertname", "rule")
    return Caller(
        f"alert:{name}"[:100], None, frozenset({Scope.ADMIN}), request_id=f"alert:{alert.fingerprint}"
    )
