"""Pure helpers behind the Autoscaling tab's form: the app's ``autoscaling:`` policy as form values (replica
range, metric targets, scale to zero, predictive on/off) and back as a partial settings document for
``PATCH …/settings`` (what ``yunzhou settings set`` sends). Cleared parts are sent as null, which removes
them; what the form does not show (behavior, schedules, the predictive model's options, custom metrics or
other target types) is kept as it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import FieldProblem
from yunzhou.web.forms import FieldErrors, errors_by_prefix, number_or_text

Json = dict[str, Any]
# metric type → the target the form edits (cpu/memory: % of the request; rps/inflight: per instance)
METRIC_TARGETS: dict[str, tuple[str, str]] = {
    "cpu": ("Utilization", "averageUtilization"),
    "memory": ("Utilization", "averageUtilization"),
    "rps": ("AverageValue", "averageValue"),
    "inflight": ("AverageValue", "averageValue"),
}
METRIC_TYPES = tuple(METRIC_TARGETS)
FIELDS = ("enabled", "min_replicas", "max_replicas", "metrics", "idle_seconds", "predictive")
_PREFIXES = (
    ("autoscaling.minReplicas", "min_replicas"),
    ("autoscaling.maxReplicas", "max_replicas"),
    ("autoscaling.metrics", "metrics"),
    ("autoscaling.scaleToZero", "idle_seconds"),
    ("autoscaling.predictive", "predictive"),
)


def _editable(metric: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, target value) when the form can show this metric, else None (it is kept as it is)."""
    kind, target = metric.get("type"), metric.get("target") or {}
    if kind not in METRIC_TARGETS or metric.get("name") or metric.get("query"):
        return None
    target_type, key = METRIC_TARGETS[str(kind)]
    if target.get("type") != target_type or key not in target:
        return None
    value = target[key]
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return str(kind), text


@dataclass
class AutoscalingForm:
    enabled: bool = False
    min_replicas: str = "1"
    max_replicas: str = "4"
    metrics: list[tuple[str, str]] = field(default_factory=list)  # (type, target value)
    kept: list[Json] = field(default_factory=list)  # metrics the form cannot show: sent back unchanged
    idle_seconds: str = ""
    predictive: bool = False

    @classmethod
    def from_policy(cls, policy: Mapping[str, Any] | None) -> AutoscalingForm:
        if not policy:
            return cls()
        rows: list[tuple[str, str]] = []
        kept: list[Json] = []
        for metric in policy.get("metrics") or []:
            row = _editable(metric)
            if row is None:
                kept.append(dict(metric))
            else:
                rows.append(row)
        zero = policy.get("scaleToZero") or {}
        return cls(
            enabled=True,
            min_replicas=str(policy.get("minReplicas", 1)),
            max_replicas=str(policy.get("maxReplicas", "")),
            metrics=rows,
            kept=kept,
            idle_seconds=str(zero.get("idleSeconds", "")) if zero.get("enabled") else "",
            predictive=bool(policy.get("predictive")),
        )

    @classmethod
    def from_form(cls, form: Any, policy: Mapping[str, Any] | None) -> AutoscalingForm:
        """From submitted form data; metrics the form cannot show are taken from the current ``policy``."""
        types, values = form.getlist("metric_type"), form.getlist("metric_value")
        rows = [
            (str(kind), str(value).strip())
            for kind, value in zip(types, values, strict=False)
            if str(value).strip()
        ]
        return cls(
            enabled=form.get("enabled") == "on",
            min_replicas=str(form.get("min_replicas") or "").strip(),
            max_replicas=str(form.get("max_replicas") or "").strip(),
            metrics=rows,
            kept=cls.from_policy(policy).kept if policy else [],
            idle_seconds=str(form.get("idle_seconds") or "").strip(),
            predictive=form.get("predictive") == "on",
        )

    def build(self) -> tuple[Json, list[FieldProblem]]:
        """(partial settings, problems found before anything is sent)."""
        if not self.enabled:
            return {"autoscaling": None}, []
        problems: list[FieldProblem] = []
        metrics: list[Json] = []
        for kind, value in self.metrics:
            if kind not in METRIC_TARGETS:
                problems.append(FieldProblem("metrics", f"{kind!r}: allowed: {', '.join(METRIC_TYPES)}"))
                continue
            target_type, key = METRIC_TARGETS[kind]
            metrics.append({"type": kind, "target": {"type": target_type, key: number_or_text(value)}})
        policy: Json = {
            "minReplicas": number_or_text(self.min_replicas) if self.min_replicas else None,
            "maxReplicas": number_or_text(self.max_replicas) if self.max_replicas else None,
            "metrics": metrics + self.kept,
            "scaleToZero": {"enabled": True, "idleSeconds": number_or_text(self.idle_seconds)}
            if self.idle_seconds
            else None,
            "predictive": {} if self.predictive else None,  # {}: keep (or take the defaults of) its options
        }
        return {"autoscaling": policy}, problems

    def rows(self) -> list[tuple[str, str]]:
        """The metric rows to show: those set, plus one blank row to add another."""
        return [*self.metrics, ("rps" if self.metrics else "cpu", "")]


def autoscaling_errors(problems: Iterable[FieldProblem]) -> FieldErrors:
    return errors_by_prefix(problems, FIELDS, _PREFIXES)
