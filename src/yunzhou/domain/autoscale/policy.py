"""The autoscaling policy: one model for the local runtime, Kubernetes (HPA/KEDA) and the simulator.

It is parsed from the ``autoscaling:`` key of an app's platform settings (``yunzhou.yaml``)::

    autoscaling:
      minReplicas: 1            # 0 allowed only with scaleToZero.enabled
      maxReplicas: 10
      tolerance: 0.1            # HPA's --horizontal-pod-autoscaler-tolerance
      metrics:                  # desired replicas = max over these (at least one)
        - {type: cpu, target: {type: Utilization, averageUtilization: 60}}     # % of the CPU request
        - {type: memory, target: {type: AverageValue, averageValue: 268435456}} # bytes per instance
        - {type: rps, target: {type: AverageValue, averageValue: 50}}          # requests/s per instance
        - {type: inflight, target: {type: AverageValue, averageValue: 10}}     # concurrency per instance
        - {type: custom, name: orders_per_second, target: {type: AverageValue, averageValue: 100}}
        - {type: custom, name: queue_depth, query: 'sum(queue_len{app="orders"})',
           target: {type: Value, value: 30}}
      behavior:                 # exactly autoscaling/v2 HorizontalPodAutoscalerBehavior; defaults below
        scaleUp:
          stabilizationWindowSeconds: 0
          selectPolicy: Max     # Max | Min | Disabled
          policies: [{type: Percent, value: 100, periodSeconds: 15},
                     {type: Pods, value: 4, periodSeconds: 15}]
        scaleDown:
          stabilizationWindowSeconds: 300
          selectPolicy: Max
          policies: [{type: Percent, value: 100, periodSeconds: 15}]
      predictive:               # optional: learn daily/weekly seasonality, scale to max(reactive, forecast)
        enabled: true
        model: holt-winters     # holt-winters | seasonal-quantile
        seasonality: [daily]    # hourly, daily and/or weekly
        startupSeconds: 30      # instance start time; forecast horizon = startupSeconds + marginSeconds
        marginSeconds: 30
        minHistorySeconds: 172800   # less history than this → reactive mode
        maxError: 0.5           # recent forecast error (sMAPE) above this → reactive mode
        quantile: 0.9           # seasonal-quantile only
        metric: rps             # the forecast metric: one of the AverageValue metrics above
      schedules:                # cron windows that override min/max while active (latest start wins)
        - {name: business-hours, cron: "0 8 * * 1-5", durationSeconds: 36000,
           timezone: Asia/Shanghai, minReplicas: 4}
      scaleToZero: {enabled: false, idleSeconds: 600, holdTimeoutSeconds: 30, queueLimit: 1000}

Structure (all frozen dataclasses, Kubernetes names in ``to_dict()``):

- :class:`AutoscalingPolicy` — ``min_replicas``, ``max_replicas``, ``tolerance``, ``metrics``
  (tuple of :class:`MetricSpec`), ``behavior`` (:class:`Behavior`), ``predictive``
  (:class:`PredictiveSpec` or None), ``schedules`` (tuple of :class:`ScheduleWindow`),
  ``scale_to_zero`` (:class:`ScaleToZero`).
- :class:`MetricSpec` — ``kind`` (``cpu | memory | rps | inflight | custom``), ``target``
  (:class:`MetricTarget`: ``type`` ``Utilization | AverageValue | Value`` and ``value``), and for
  ``custom`` a ``name`` plus either ``query`` (PromQL against the configured metrics engine) or
  nothing (the series of that name scraped from the app's own ``/metrics``).
  Kubernetes mapping: cpu/memory → ``Resource``; rps/inflight/custom-without-query → ``Pods``
  (AverageValue) or ``Object`` (Value); custom-with-query → ``External``. :meth:`MetricSpec.hpa_source`
  names which.
- :class:`Behavior` — ``scale_up`` / ``scale_down`` :class:`ScalingRules`
  (``stabilization_window_seconds``, ``select_policy``, ``policies`` of :class:`ScalingPolicy`
  ``type`` ``Pods | Percent``, ``value``, ``period_seconds``).

Allowed targets: cpu/memory take ``Utilization`` (percent of the request) or ``AverageValue``
(cores / bytes per instance); rps/inflight/custom take ``AverageValue`` (per instance) or ``Value``
(the total, compared with the whole app — HPA's Object/External ``Value`` semantics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yunzhou.domain.autoscale.cron import cron_problem
from yunzhou.domain.errors import FieldProblem, UserError

MAX_REPLICAS = 1000
METRIC_KINDS = ("cpu", "memory", "rps", "inflight", "custom")
TARGET_TYPES = ("Utilization", "AverageValue", "Value")
SELECT_POLICIES = ("Max", "Min", "Disabled")
POLICY_TYPES = ("Pods", "Percent")
MODELS = ("holt-winters", "seasonal-quantile")
SEASONS = ("hourly", "daily", "weekly")
_TARGET_FIELD = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}
_ALLOWED_TARGETS: dict[str, tuple[str, ...]] = {
    "cpu": ("Utilization", "AverageValue"),
    "memory": ("Utilization", "AverageValue"),
    "rps": ("AverageValue", "Value"),
    "inflight": ("AverageValue", "Value"),
    "custom": ("AverageValue", "Value"),
}
_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

MetricKind = Literal["cpu", "memory", "rps", "inflight", "custom"]
TargetType = Literal["Utilization", "AverageValue", "Value"]
SelectPolicy = Literal["Max", "Min", "Disabled"]
PolicyType = Literal["Pods", "Percent"]


@dataclass(frozen=True)
class MetricTarget:
    """``type`` Utilization (``value`` = percent of the request), AverageValue (per instance) or Value."""

    type: TargetType
    value: float

    def to_dict(self) -> dict[str, Any]:
        value: float | int = int(self.value) if self.type == "Utilization" else self.value
        return {"type": self.type, _TARGET_FIELD[self.type]: value}


@dataclass(frozen=True)
class MetricSpec:
    kind: MetricKind
    target: MetricTarget
    name: str | None = None  # custom only: the metric's name
    query: str | None = None  # custom only: a PromQL expression; None → scraped from the app

    @property
    def label(self) -> str:
        """A short name for decisions and charts: ``cpu``, ``rps``, ``custom:orders_per_second``."""
        return f"custom:{self.name}" if self.kind == "custom" else self.kind

    def hpa_source(self) -> str:
        """The autoscaling/v2 metric source type this maps to: Resource, Pods, Object or External."""
        if self.kind in ("cpu", "memory"):
            return "Resource"
        if self.kind == "custom" and self.query:
            return "External"
        return "Object" if self.target.type == "Value" else "Pods"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.name is not None:
            out["name"] = self.name
        if self.query is not None:
            out["query"] = self.query
        out["target"] = self.target.to_dict()
        return out


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "periodSeconds": self.period_seconds}


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy = "Max"
    policies: tuple[ScalingPolicy, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [p.to_dict() for p in self.policies],
        }


DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    def to_dict(self) -> dict[str, Any]:
        return {"scaleUp": self.scale_up.to_dict(), "scaleDown": self.scale_down.to_dict()}


@dataclass(frozen=True)
class PredictiveSpec:
    enabled: bool = True
    model: str = "holt-winters"
    seasonality: tuple[str, ...] = ("daily",)
    startup_seconds: int = 30
    margin_seconds: int = 30
    min_history_seconds: int = 2 * 86400
    max_error: float = 0.5
    quantile: float = 0.9
    metric: str = "rps"

    @property
    def horizon_seconds(self) -> int:
        """How far ahead demand is forecast: one instance start plus the margin."""
        return self.startup_seconds + self.margin_seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "model": self.model,
            "seasonality": list(self.seasonality),
            "startupSeconds": self.startup_seconds,
            "marginSeconds": self.margin_seconds,
            "minHistorySeconds": self.min_history_seconds,
            "maxError": self.max_error,
            "quantile": self.quantile,
            "metric": self.metric,
        }


@dataclass(frozen=True)
class ScheduleWindow:
    """While a window is active (``cron`` fired less than ``duration_seconds`` ago in ``timezone``),
    its ``min_replicas``/``max_replicas`` (whichever are set) replace the policy's."""

    name: str
    cron: str
    duration_seconds: int
    timezone: str = "UTC"
    min_replicas: int | None = None
    max_replicas: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "cron": self.cron,
            "durationSeconds": self.duration_seconds,
            "timezone": self.timezone,
        }
        if self.min_replicas is not None:
            out["minReplicas"] = self.min_replicas
        if self.max_replicas is not None:
            out["maxReplicas"] = self.max_replicas
        return out


@dataclass(frozen=True)
class ScaleToZero:
    enabled: bool = False
    idle_seconds: int = 600
    hold_timeout_seconds: int = 30
    queue_limit: int = 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "idleSeconds": self.idle_seconds,
            "holdTimeoutSeconds": self.hold_timeout_seconds,
            "queueLimit": self.queue_limit,
        }


@dataclass(frozen=True)
class AutoscalingPolicy:
    min_replicas: int = 1
    max_replicas: int = 1
    metrics: tuple[MetricSpec, ...] = ()
    behavior: Behavior = field(default_factory=Behavior)
    tolerance: float = 0.1
    predictive: PredictiveSpec | None = None
    schedules: tuple[ScheduleWindow, ...] = ()
    scale_to_zero: ScaleToZero = field(default_factory=ScaleToZero)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "tolerance": self.tolerance,
            "metrics": [m.to_dict() for m in self.metrics],
            "behavior": self.behavior.to_dict(),
        }
        if self.predictive is not None:
            out["predictive"] = self.predictive.to_dict()
        if self.schedules:
            out["schedules"] = [s.to_dict() for s in self.schedules]
        out["scaleToZero"] = self.scale_to_zero.to_dict()
        return out


# --- parsing -------------------------------------------------------------------------------------------

_TOP = (
    "minReplicas",
    "maxReplicas",
    "tolerance",
    "metrics",
    "behavior",
    "predictive",
    "schedules",
    "scaleToZero",
)


def parse_autoscaling(doc: object, path: str = "settings.autoscaling") -> AutoscalingPolicy:
    """Validate an ``autoscaling:`` document (collecting every problem) and return the policy."""
    problems: list[FieldProblem] = []
    policy = collect_autoscaling(doc, path, problems)
    if problems or policy is None:
        raise UserError("autoscaling settings are invalid", problems=problems)
    return policy


def collect_autoscaling(doc: object, path: str, problems: list[FieldProblem]) -> AutoscalingPolicy | None:
    """Like :func:`parse_autoscaling` but appends problems to ``problems`` (for ``parse_settings``)."""
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with minReplicas, maxReplicas, metrics, …"))
        return None
    before = len(problems)
    problems += _unknown(doc, _TOP, path)
    scale_to_zero = _parse_scale_to_zero(doc.get("scaleToZero"), f"{path}.scaleToZero", problems)
    low = 0 if scale_to_zero.enabled else 1
    min_r = _int(doc.get("minReplicas", 1), f"{path}.minReplicas", low, MAX_REPLICAS, problems)
    max_r = _int(doc.get("maxReplicas"), f"{path}.maxReplicas", 1, MAX_REPLICAS, problems)
    if min_r is not None and max_r is not None and min_r > max_r:
        problems.append(FieldProblem(f"{path}.maxReplicas", f"must be at least minReplicas ({min_r})"))
    tolerance = _number(doc.get("tolerance", 0.1), f"{path}.tolerance", 0.0, 1.0, problems)
    metrics = _parse_metrics(doc.get("metrics"), f"{path}.metrics", problems)
    behavior = _parse_behavior(doc.get("behavior"), f"{path}.behavior", problems)
    predictive = _parse_predictive(doc.get("predictive"), f"{path}.predictive", metrics, problems)
    schedules = _parse_schedules(doc.get("schedules"), f"{path}.schedules", problems)
    if len(problems) > before or min_r is None or max_r is None or tolerance is None:
        return None
    return AutoscalingPolicy(
        min_replicas=min_r,
        max_replicas=max_r,
        metrics=metrics,
        behavior=behavior,
        tolerance=tolerance,
        predictive=predictive,
        schedules=schedules,
        scale_to_zero=scale_to_zero,
    )


def _unknown(doc: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> list[FieldProblem]:
    return [
        FieldProblem(f"{path}.{key}", f"unknown field {key!r}; allowed: {', '.join(allowed)}")
        for key in doc
        if key not in allowed
    ]


def _int(value: object, path: str, low: int, high: int, problems: list[FieldProblem]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(FieldProblem(path, f"required: an integer {low}-{high}"))
        return None
    return value


def _number(value: object, path: str, low: float, high: float, problems: list[FieldProblem]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.append(FieldProblem(path, f"must be a number {low:g}-{high:g}"))
        return None
    return float(value)


def _choice(value: object, path: str, allowed: tuple[str, ...], problems: list[FieldProblem]) -> str | None:
    if value not in allowed:
        problems.append(FieldProblem(path, f"{value!r} is not allowed; allowed: {', '.join(allowed)}"))
        return None
    return str(value)


def _parse_metrics(raw: object, path: str, problems: list[FieldProblem]) -> tuple[MetricSpec, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(FieldProblem(path, "required: a non-empty list of {type, target}"))
        return ()
    out: list[MetricSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        spec = _parse_metric(item, f"{path}.{i}", problems)
        if spec is None:
            continue
        if spec.label in seen:
            problems.append(FieldProblem(f"{path}.{i}", f"duplicate metric {spec.label}"))
        seen.add(spec.label)
        out.append(spec)
    return tuple(out)


def _parse_metric(item: object, path: str, problems: list[FieldProblem]) -> MetricSpec | None:
    if not isinstance(item, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with type and target"))
        return None
    before = len(problems)
    problems += _unknown(item, ("type", "name", "query", "target"), path)
    kind = _choice(item.get("type"), f"{path}.type", METRIC_KINDS, problems)
    name = item.get("name")
    query = item.get("query")
    if kind == "custom":
        if not isinstance(name, str) or not _METRIC_NAME_RE.fullmatch(name):
            problems.append(FieldProblem(f"{path}.name", "required for custom: a Prometheus metric name"))
        if query is not None and (not isinstance(query, str) or not query.strip()):
            problems.append(FieldProblem(f"{path}.query", "must be a non-empty PromQL expression"))
    elif kind is not None:
        for key in ("name", "query"):
            if item.get(key) is not None:
                problems.append(FieldProblem(f"{path}.{key}", "only allowed for type custom"))
    target = _parse_target(item.get("target"), f"{path}.target", kind, problems)
    if len(problems) > before or kind is None or target is None:
        return None
    return MetricSpec(kind, target, name, query)  # type: ignore[arg-type]


def _parse_target(
    raw: object, path: str, kind: str | None, problems: list[FieldProblem]
) -> MetricTarget | None:
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "required: {type: Utilization|AverageValue|Value, …}"))
        return None
    allowed = _ALLOWED_TARGETS.get(kind or "", TARGET_TYPES)
    ttype = _choice(raw.get("type"), f"{path}.type", allowed, problems)
    if ttype is None:
        return None
    key = _TARGET_FIELD[ttype]
    problems += _unknown(raw, ("type", key), path)
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.append(FieldProblem(f"{path}.{key}", f"required for {ttype}: a number greater than 0"))
        return None
    if ttype == "Utilization" and not isinstance(value, int):
        problems.append(FieldProblem(f"{path}.{key}", "must be an integer percentage"))
        return None
    return MetricTarget(ttype, float(value))  # type: ignore[arg-type]


def _parse_rules(raw: object, path: str, default: ScalingRules, problems: list[FieldProblem]) -> ScalingRules:
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        problems.append(
            FieldProblem(path, "must be a mapping with stabilizationWindowSeconds, selectPolicy, policies")
        )
        return default
    problems += _unknown(raw, ("stabilizationWindowSeconds", "selectPolicy", "policies"), path)
    window = _int(
        raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds),
        f"{path}.stabilizationWindowSeconds",
        0,
        3600,
        problems,
    )
    select = _choice(raw.get("selectPolicy", "Max"), f"{path}.selectPolicy", SELECT_POLICIES, problems)
    policies = default.policies
    raw_policies = raw.get("policies")
    if raw_policies is not None:
        if not isinstance(raw_policies, list) or (not raw_policies and select != "Disabled"):
            problems.append(
                FieldProblem(f"{path}.policies", "must be a non-empty list of {type, value, periodSeconds}")
            )
        else:
            parsed = [_parse_policy(p, f"{path}.policies.{i}", problems) for i, p in enumerate(raw_policies)]
            policies = tuple(p for p in parsed if p is not None)
    if window is None or select is None:
        return default
    return ScalingRules(window, select, policies)  # type: ignore[arg-type]


def _parse_policy(raw: object, path: str, problems: list[FieldProblem]) -> ScalingPolicy | None:
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with type, value, periodSeconds"))
        return None
    problems += _unknown(raw, ("type", "value", "periodSeconds"), path)
    ptype = _choice(raw.get("type"), f"{path}.type", POLICY_TYPES, problems)
    value = _int(raw.get("value"), f"{path}.value", 1, 100_000, problems)
    period = _int(raw.get("periodSeconds"), f"{path}.periodSeconds", 1, 1800, problems)
    if ptype is None or value is None or period is None:
        return None
    return ScalingPolicy(ptype, value, period)  # type: ignore[arg-type]


def _parse_behavior(raw: object, path: str, problems: list[FieldProblem]) -> Behavior:
    if raw is None:
        return Behavior()
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with scaleUp and/or scaleDown"))
        return Behavior()
    problems += _unknown(raw, ("scaleUp", "scaleDown"), path)
    return Behavior(
        _parse_rules(raw.get("scaleUp"), f"{path}.scaleUp", DEFAULT_SCALE_UP, problems),
        _parse_rules(raw.get("scaleDown"), f"{path}.scaleDown", DEFAULT_SCALE_DOWN, problems),
    )


_PREDICTIVE_KEYS = (
    "enabled",
    "model",
    "seasonality",
    "startupSeconds",
    "marginSeconds",
    "minHistorySeconds",
    "maxError",
    "quantile",
    "metric",
)


def _parse_predictive(
    raw: object, path: str, metrics: tuple[MetricSpec, ...], problems: list[FieldProblem]
) -> PredictiveSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping (enabled, model, seasonality, …)"))
        return None
    before = len(problems)
    problems += _unknown(raw, _PREDICTIVE_KEYS, path)
    d = PredictiveSpec()
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(FieldProblem(f"{path}.enabled", "must be true or false"))
    model = _choice(raw.get("model", d.model), f"{path}.model", MODELS, problems)
    seasons = raw.get("seasonality", list(d.seasonality))
    if not isinstance(seasons, list) or not seasons or any(s not in SEASONS for s in seasons):
        problems.append(
            FieldProblem(f"{path}.seasonality", "must be a non-empty list of hourly, daily, weekly")
        )
        seasons = list(d.seasonality)
    startup = _int(raw.get("startupSeconds", d.startup_seconds), f"{path}.startupSeconds", 0, 3600, problems)
    margin = _int(raw.get("marginSeconds", d.margin_seconds), f"{path}.marginSeconds", 0, 3600, problems)
    history = _int(
        raw.get("minHistorySeconds", d.min_history_seconds),
        f"{path}.minHistorySeconds",
        0,
        90 * 86400,
        problems,
    )
    max_error = _number(raw.get("maxError", d.max_error), f"{path}.maxError", 0.0, 2.0, problems)
    quantile = _number(raw.get("quantile", d.quantile), f"{path}.quantile", 0.5, 1.0, problems)
    metric = raw.get("metric", d.metric)
    averages = [m.label for m in metrics if m.target.type == "AverageValue"]
    if metric not in averages:
        problems.append(
            FieldProblem(
                f"{path}.metric",
                "must name an AverageValue metric of this policy; allowed: "
                + (", ".join(averages) or "(none)"),
            )
        )
    if len(problems) > before:
        return None
    return PredictiveSpec(
        enabled=bool(enabled),
        model=str(model),
        seasonality=tuple(dict.fromkeys(str(s) for s in seasons)),
        startup_seconds=int(startup or 0),
        margin_seconds=int(margin or 0),
        min_history_seconds=int(history or 0),
        max_error=float(max_error or 0.0),
        quantile=float(quantile or d.quantile),
        metric=str(metric),
    )


def _parse_schedules(raw: object, path: str, problems: list[FieldProblem]) -> tuple[ScheduleWindow, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(FieldProblem(path, "must be a list of {name, cron, durationSeconds, timezone, …}"))
        return ()
    out: list[ScheduleWindow] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        p = f"{path}.{i}"
        if not isinstance(item, Mapping):
            problems.append(FieldProblem(p, "must be a mapping with name, cron, durationSeconds"))
            continue
        before = len(problems)
        problems += _unknown(
            item, ("name", "cron", "durationSeconds", "timezone", "minReplicas", "maxReplicas"), p
        )
        name = item.get("name")
        if not isinstance(name, str) or not name or name in names:
            problems.append(FieldProblem(f"{p}.name", "required: a unique non-empty name"))
        names.add(str(name))
        cron = item.get("cron")
        problem = cron_problem(cron)
        if problem:
            problems.append(FieldProblem(f"{p}.cron", problem))
        duration = _int(item.get("durationSeconds"), f"{p}.durationSeconds", 1, 31 * 86400, problems)
        tz = item.get("timezone", "UTC")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                FieldProblem(
                    f"{p}.timezone", f"unknown time zone {tz!r}; use an IANA name like Asia/Shanghai"
                )
            )
        lo = item.get("minReplicas")
        hi = item.get("maxReplicas")
        if lo is None and hi is None:
            problems.append(FieldProblem(p, "set minReplicas and/or maxReplicas"))
        if lo is not None:
            _int(lo, f"{p}.minReplicas", 0, MAX_REPLICAS, problems)
        if hi is not None:
            _int(hi, f"{p}.maxReplicas", 1, MAX_REPLICAS, problems)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(FieldProblem(f"{p}.maxReplicas", "must be at least minReplicas"))
        if len(problems) == before:
            out.append(ScheduleWindow(str(name), str(cron), int(duration or 0), str(tz), lo, hi))
    return tuple(out)


def _parse_scale_to_zero(raw: object, path: str, problems: list[FieldProblem]) -> ScaleToZero:
    if raw is None:
        return ScaleToZero()
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with enabled, idleSeconds, holdTimeoutSeconds"))
        return ScaleToZero()
    problems += _unknown(raw, ("enabled", "idleSeconds", "holdTimeoutSeconds", "queueLimit"), path)
    d = ScaleToZero()
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(FieldProblem(f"{path}.enabled", "must be true or false"))
        enabled = False
    idle = _int(raw.get("idleSeconds", d.idle_seconds), f"{path}.idleSeconds", 10, 7 * 86400, problems)
    hold = _int(
        raw.get("holdTimeoutSeconds", d.hold_timeout_seconds), f"{path}.holdTimeoutSeconds", 1, 600, problems
    )
    queue = _int(raw.get("queueLimit", d.queue_limit), f"{path}.queueLimit", 1, 100_000, problems)
    return ScaleToZero(
        enabled,
        idle if idle is not None else d.idle_seconds,
        hold if hold is not None else d.hold_timeout_seconds,
        queue if queue is not None else d.queue_limit,
    )
