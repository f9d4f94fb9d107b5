"""Healing actions bound to rules. Each goes through the ordinary use-cases (AppService.rollback/scale
write desired state + audit; the reconciler does the work), acting as the principal ``alert:<name>``, and is
recorded in the app's timeline and the audit trail with the alert as the reason. A cool-down per (rule,
app) and a cap per hour bound them; a silenced alert takes no action.

A rule's firing alerts are taken together per app — one budget, one action — so ``restart`` can restart
every instance they name (``instance``/``pod`` labels, as per-instance series carry) and only those; when
one of them names no instance (an app-wide alert), the whole app is restarted."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
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

    def consider(self, inst: RuleInstance, firing: Sequence[AlertState], fired_now: Collection[str]) -> None:
        """Run the rule's actions for its firing (unsilenced) alerts, once per app they concern, if the
        budget allows. Refusals are recorded only when one of the app's alerts has just fired (a
        fingerprint in ``fired_now``), so a long-firing alert does not fill the timeline."""
        if not inst.rule.actions:
            return
        by_app: dict[tuple[str, str, str], list[AlertState]] = {}
        for alert in firing:
            where = where_of(inst.scope, alert.labels)
            if all(where):
                by_app.setdefault(where, []).append(alert)
            elif alert.fingerprint in fired_now:
                log.warning("alert %s names no app (labels project, env, app): no action", inst.rule.alert)
        for where, alerts in by_app.items():
            just_fired = [a for a in alerts if a.fingerprint in fired_now]
            self._heal(inst, where, alerts, (just_fired or alerts)[0], just_fired=bool(just_fired))

    def _heal(
        self,
        inst: RuleInstance,
        where: tuple[str, str, str],
        alerts: Sequence[AlertState],
        alert: AlertState,
        *,
        just_fired: bool,
    ) -> None:
        """``alert`` is the one the timeline and audit rows name (the newest to fire); the action
        concerns all of ``alerts``."""
        project, env, app = where
        book = self.cp.healing
        left, why_not = book.action_budget(inst.key, project, env, app, inst.rule)
        for action in inst.rule.actions:
            if left <= 0:  # every action of the pass counts against the hourly cap, not only the first
                if just_fired:
                    book.record_action(
                        _caller(alert), inst.key, alert, where, action.type, "skipped", {"reason": why_not}
                    )
                continue
            outcome, detail = self._run(action, alert, alerts, project, env, app)
            if outcome != "skipped":
                left -= 1
            if outcome == "skipped" and not just_fired:
                continue  # said once when the alert fired; a long-firing alert does not fill the timeline
            detail["because"] = alert.annotations.get("summary") or alert.labels.get("alertname", "")
            book.record_action(_caller(alert), inst.key, alert, where, action.type, outcome, detail)
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
        self,
        action: HealingAction,
        alert: AlertState,
        alerts: Sequence[AlertState],
        project: str,
        env: str,
        app: str,
    ) -> tuple[str, dict[str, Any]]:
        caller = _caller(alert)
        try:
            if action.type == "rollback":
                target, why_not = self.cp.healing.rollback_target(project, env, app)
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
                named = failing_instances(alerts)
                if named is None:  # an app-wide alert: a rolling restart of every instance
                    result = self.cp.healing.restart(caller, project, env, app, reason)
                    return "done", {
                        "release": result["release"]["number"],
                        "rollout": result["rollout"]["id"],
                    }
                rollout, why_not = self.cp.healing.restart_instances(caller, project, env, app, named, reason)
                if rollout is None:
                    return "skipped", {"reason": why_not, "instances": named}
                return "done", {"instances": rollout["strategy"]["instances"], "rollout": rollout["id"]}
            return "skipped", {"reason": f"{action.type} is not supported by this server"}
        except YunzhouError as exc:
            return "failed", {"reason": exc.message}


def failing_instances(alerts: Iterable[AlertState]) -> list[str] | None:
    """The instances the alerts concern (their ``instance`` label, else ``pod`` as kube-state-metrics
    and cAdvisor name it), or None when one of them names none: an app-wide alert concerns them all."""
    named: set[str] = set()
    for alert in alerts:
        one = alert.labels.get("instance") or alert.labels.get("pod")
        if not one:
            return None
        named.add(one)
    return sorted(named)


def _caller(alert: AlertState) -> Caller:
    name = alert.labels.get("alertname", "rule")
    return Caller(
        f"alert:{name}"[:100], None, frozenset({Scope.ADMIN}), request_id=f"alert:{alert.fingerprint}"
    )
