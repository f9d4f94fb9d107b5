"""Alert rules (the Prometheus alerting-rule format), the default rules every app gets, how overrides at
global/environment/app scope tune them, and the alert state machine — all pure.

A rule document looks like a Prometheus rule, plus Yunzhou's healing ``actions``::

    alert: CheckoutSlow
    expr: histogram_quantile(0.95, sum by (le) (rate(checkout_seconds_bucket[5m]))) > 2
    for: 5m
    keep_firing_for: 1m          # optional
    labels: {severity: warning}
    annotations: {summary: "p95 is {{ $value }}s on {{ $labels.app }}"}
    actions: [{type: scale, by: 1, max: 6}]     # optional: restart | scale | rollback
    cooldown: 10m                # optional: per (rule, app) between two actions
    max_actions_per_hour: 3      # optional
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError, invalid

ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
ACTION_TYPES = ("restart", "scale", "rollback")
SEVERITIES = ("info", "warning", "critical")
DEFAULT_COOLDOWN = 600.0
DEFAULT_MAX_ACTIONS_PER_HOUR = 3


# ---- durations ("2m", "1h30m", "15s", "500ms") as Prometheus writes them
def parse_duration(value: object, path: str) -> float:
    if isinstance(value, bool):
        raise invalid(path, "must be a duration such as 30s, 2m or 1h")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise invalid(path, "must not be negative")
        return float(value)
    m = _DURATION.match(value) if isinstance(value, str) and value else None
    if m is None or not any(m.groups()):
        raise invalid(path, f"{value!r} is not a duration; write it like 30s, 2m, 1h30m or 500ms")
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000


def format_duration(seconds: float) -> str:
    if seconds <= 0:
        return "0s"
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    total, out = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out += f"{total // size}{unit}"
            total %= size
    return out


# ---- templates: {{ $labels.name }}, {{ $value }}, {{ $externalLabels.x }} — expansion, never evaluation
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_REF = re.compile(r"^\$(labels|externalLabels)\.([A-Za-z_][A-Za-z0-9_]*)$|^\$(value)$|^\$(labels)$")
_PIPE_FUNCS = ("humanize", "humanizePercentage", "humanizeDuration", "printf")


def _humanize(v: float) -> str:
    """Prometheus' humanize: 1234 → "1.234k", 0.5 → "500m", 0 → "0"."""
    if v == 0 or not math.isfinite(v):
        return f"{v:.4g}"
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}"


def _humanize_duration(v: float) -> str:
    """Prometheus' humanizeDuration: 1.5 → "1.5s", 90 → "1m 30s", 0.25 → "250ms"."""
    if not math.isfinite(v):
        return f"{v:.4g}"
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign, total = ("-" if v < 0 else ""), int(abs(v))
        days, hours, minutes, seconds = total // 86400, total // 3600 % 24, total // 60 % 60, total % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{abs(v):.4g}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}s"


def _apply(func: str, value: str, arg: str | None) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    if func == "humanize":
        return _humanize(number)
    if func == "humanizePercentage":
        return f"{number * 100:.4g}%"
    if func == "humanizeDuration":
        return _humanize_duration(number)
    if func == "printf" and arg:
        go = arg.strip('"')
        py = re.sub(r"%(\.\d+)?[fgd]", lambda m: "{:" + (m.group(1) or "") + "f}", go)
        try:
            return py.format(number)
        except (ValueError, IndexError):
            return value
    return value


def check_template(text: str, path: str) -> None:
    for m in _TEMPLATE.finditer(text):
        parts = [p.strip() for p in m.group(1).split("|")]
        if not _REF.match(parts[0]):
            raise invalid(
                path, f"{{{{ {m.group(1)} }}}}: only $labels.<name>, $value and $externalLabels.<name>"
            )
        for p in parts[1:]:
            if p.split(" ", 1)[0] not in _PIPE_FUNCS:
                raise invalid(path, f"{p!r}: allowed functions are {', '.join(_PIPE_FUNCS)}")


def expand(
    text: str, labels: Mapping[str, str], value: float | None, external: Mapping[str, str] = {}
) -> str:
    """Go-template-like expansion of the references Prometheus annotations use; anything else stays."""

    def one(m: re.Match[str]) -> str:
        parts = [p.strip() for p in m.group(1).split("|")]
        ref = _REF.match(parts[0])
        if ref is None:
            return m.group(0)
        if ref.group(3):
            out = "" if value is None else _format_value(value)
        elif ref.group(4):
            out = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        else:
            out = (labels if ref.group(1) == "labels" else external).get(ref.group(2), "")
        for p in parts[1:]:
            func, _, arg = p.partition(" ")
            out = _apply(func, out, arg or None)
        return out

    return _TEMPLATE.sub(one, text)


def _format_value(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else f"{value:.6g}"


# ---- the rule model
@dataclass(frozen=True)
class HealingAction:
    type: str  # restart | scale | rollback
    by: int = 1  # scale: add this many replicas
    max: int = 10  # scale: never above this many

    def to_dict(self) -> dict[str, Any]:
        if self.type == "scale":
            return {"type": "scale", "by": self.by, "max": self.max}
        return {"type": self.type}


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    actions: tuple[HealingAction, ...] = ()
    cooldown_s: float = DEFAULT_COOLDOWN
    max_actions_per_hour: int = DEFAULT_MAX_ACTIONS_PER_HOUR

    def to_dict(self) -> dict[str, Any]:
        """The Prometheus rule document (what a PrometheusRule object carries), plus Yunzhou's actions."""
        out: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_s:
            out["for"] = format_duration(self.for_s)
        if self.keep_firing_for_s:
            out["keep_firing_for"] = format_duration(self.keep_firing_for_s)
        out["labels"] = dict(self.labels)
        out["annotations"] = dict(self.annotations)
        if self.actions:
            out["actions"] = [a.to_dict() for a in self.actions]
            out["cooldown"] = format_duration(self.cooldown_s)
            out["max_actions_per_hour"] = self.max_actions_per_hour
        return out

    def prometheus_rule(self) -> dict[str, Any]:
        """Only the fields Prometheus knows (for rendering PrometheusRule objects)."""
        doc = self.to_dict()
        for key in ("actions", "cooldown", "max_actions_per_hour"):
            doc.pop(key, None)
        return doc


def _str_map(value: object, path: str, problems: list[FieldProblem], *, templates: bool) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(FieldProblem(path, "must be a mapping of names to strings"))
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_NAME.match(k):
            problems.append(
                FieldProblem(f"{path}.{k}", "a name is letters, digits and _ (not first a digit)")
            )
            continue
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            problems.append(FieldProblem(f"{path}.{k}", "must be a string"))
            continue
        text = str(v)
        if templates:
            try:
                check_template(text, f"{path}.{k}")
            except UserError as exc:
                problems += exc.problems
        out[k] = text
    return out


def parse_actions(value: object, path: str, problems: list[FieldProblem]) -> tuple[HealingAction, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(FieldProblem(path, "must be a list of {type: restart|scale|rollback}"))
        return ()
    out: list[HealingAction] = []
    for i, item in enumerate(value):
        p = f"{path}.{i}"
        if not isinstance(item, Mapping) or item.get("type") not in ACTION_TYPES:
            problems.append(FieldProblem(f"{p}.type", f"must be one of: {', '.join(ACTION_TYPES)}"))
            continue
        unknown = set(item) - ({"type", "by", "max"} if item["type"] == "scale" else {"type"})
        if unknown:
            problems.append(FieldProblem(p, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}"))
            continue
        by, top = item.get("by", 1), item.get("max", 10)
        if item["type"] == "scale":
            if isinstance(by, bool) or not isinstance(by, int) or not 1 <= by <= 100:
                problems.append(FieldProblem(f"{p}.by", "must be an integer 1-100"))
                continue
            if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
                problems.append(FieldProblem(f"{p}.max", "must be an integer 1-1000"))
                continue
        out.append(HealingAction(item["type"], by, top))
    return tuple(out)


RULE_FIELDS = {
    "alert", "expr", "for", "keep_firing_for", "labels", "annotations", "actions", "cooldown",
    "max_actions_per_hour",
}  # fmt: skip


def parse_rule(doc: object, path: str = "rule") -> AlertRule:
    """A whole rule document; every problem is reported at once with its field path."""
    if not isinstance(doc, Mapping):
        raise invalid(path, "must be a mapping with alert, expr and optionally for, labels, annotations")
    problems: list[FieldProblem] = []
    for key in sorted(set(map(str, doc)) - RULE_FIELDS):
        problems.append(
            FieldProblem(f"{path}.{key}", f"unknown field; allowed: {', '.join(sorted(RULE_FIELDS))}")
        )
    name = doc.get("alert")
    if not isinstance(name, str) or not ALERT_NAME.match(name):
        problems.append(FieldProblem(f"{path}.alert", "required: letters, digits and _ (e.g. HighErrorRate)"))
    expr = doc.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        problems.append(FieldProblem(f"{path}.expr", "required: a PromQL expression"))
    rule = _tuning(doc, path, problems)
    if problems:
        raise UserError("the alert rule is invalid: nothing was changed", problems=problems)
    return replace(rule, alert=str(name), expr=str(expr).strip())


def _tuning(doc: Mapping[str, Any], path: str, problems: list[FieldProblem]) -> AlertRule:
    def duration(key: str, default: float) -> float:
        if key not in doc:
            return default
        try:
            return parse_duration(doc[key], f"{path}.{key}")
        except UserError as exc:
            problems.extend(exc.problems)
            return default

    cap = doc.get("max_actions_per_hour", DEFAULT_MAX_ACTIONS_PER_HOUR)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 1000:
        problems.append(FieldProblem(f"{path}.max_actions_per_hour", "must be an integer 0-1000"))
        cap = DEFAULT_MAX_ACTIONS_PER_HOUR
    return AlertRule(
        alert="",
        expr="",
        for_s=duration("for", 0.0),
        keep_firing_for_s=duration("keep_firing_for", 0.0),
        labels=_str_map(doc.get("labels"), f"{path}.labels", problems, templates=True),
        annotations=_str_map(doc.get("annotations"), f"{path}.annotations", problems, templates=True),
        actions=parse_actions(doc.get("actions"), f"{path}.actions", problems),
        cooldown_s=duration("cooldown", DEFAULT_COOLDOWN),
        max_actions_per_hour=cap,
    )


# ---- default rules: written against the platform's series names, one instance per app
@dataclass(frozen=True)
class DefaultRule:
    alert: str
    expr: str  # str.format fields: {sel} (the app's label matchers), {threshold}, {window}
    threshold: float
    window: str
    for_s: float
    severity: str
    summary: str
    description: str
    unit: str  # what threshold means, for docs and the CLI


APP_LABELS = ("project", "env", "app")
_BY = "sum by (project, env, app)"
_WHO = "{{ $labels.project }}/{{ $labels.env }}/{{ $labels.app }}"
DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        "AppErrorRateHigh",
        f'{_BY} (rate(yunzhou_router_requests_total{{{{{{sel}},code="5xx"}}}}[{{window}}]))'
        f" / {_BY} (rate(yunzhou_router_requests_total{{{{{{sel}}}}}}[{{window}}])) > {{threshold}}",
        0.05, "1m", 120.0, "critical",
        _WHO + ": {{ $value | humanizePercentage }} of requests fail",
        "More than the allowed share of requests through the router answered 5xx.",
        "fraction of requests (0-1)",
    ),
    DefaultRule(
        "AppLatencyHigh",
        "histogram_quantile(0.95, sum by (project, env, app, le) "
        "(rate(yunzhou_router_request_duration_seconds_bucket{{{sel}}}[{window}]))) > {threshold}",
        1.0, "5m", 180.0, "warning",
        _WHO + ": p95 latency {{ $value | humanizeDuration }}",
        "The 95th percentile of request duration through the router is above the threshold.",
        "seconds",
    ),
    DefaultRule(
        "AppCrashLooping",
        "sum by (project, env, app, instance) (increase(yunzhou_instance_restarts_total{{{sel}}}[{window}]))"
        " > {threshold}",
        2, "10m", 0.0, "critical",
        _WHO + ": instance {{ $labels.instance }} restarted "
        "{{ $value }} times",
        "An instance keeps exiting and being restarted.",
        "restarts in the window",
    ),
    DefaultRule(
        "AppInstanceDown",
        "yunzhou_app_replicas_desired{{{sel}}} - yunzhou_app_replicas_ready{{{sel}}} > {threshold}",
        0, "5m", 120.0, "warning",
        _WHO + ": {{ $value }} instance(s) not ready",
        "Fewer instances are ready than desired.",
        "missing instances",
    ),
    DefaultRule(
        "AppMemoryNearLimit",
        "max by (project, env, app, instance) (yunzhou_instance_memory_bytes{{{sel}}}"
        " / yunzhou_instance_memory_limit_bytes{{{sel}}}) > {threshold}",
        0.9, "5m", 300.0, "warning",
        _WHO + ": instance {{ $labels.instance }} uses "
        "{{ $value | humanizePercentage }} of its memory limit",
        "An instance's memory is close to its limit; the next step is an OOM kill.",
        "fraction of the limit (0-1)",
    ),
)  # fmt: skip
DEFAULTS_BY_NAME = {d.alert: d for d in DEFAULT_RULES}

# ---- platform default rules: one instance for the whole platform (global scope), not one per app.
# Expiry series are Unix times (as blackbox_exporter's probe_ssl_earliest_cert_expiry); the threshold is
# in days and the value is the time left in seconds (negative once expired: it keeps firing).
_DAY = 86400
PLATFORM_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        "CertificateExpiringSoon",
        f"yunzhou_certificate_expiry_timestamp_seconds - time() < {_DAY} * {{threshold}}",
        14, "1h", 0.0, "warning",
        "the certificate served for {{ $labels.host }} expires in {{ $value | humanizeDuration }}",
        "A certificate the router serves expires within the threshold (days); renewal has not replaced it.",
        "days before notAfter",
    ),
    DefaultRule(
        "DomainExpiringSoon",
        f"yunzhou_domain_expiry_timestamp_seconds - time() < {_DAY} * {{threshold}}",
        30, "1h", 0.0, "warning",
        "the registration of {{ $labels.domain }} expires in {{ $value | humanizeDuration }}",
        "A watched registered domain (yunzhou domains) expires within the threshold (days), per RDAP.",
        "days before the registration expires",
    ),
)  # fmt: skip
PLATFORM_RULES_BY_NAME = {d.alert: d for d in PLATFORM_RULES}
OVERRIDE_FIELDS = {
    "enabled", "threshold", "window", "for", "keep_firing_for", "labels", "annotations", "actions",
    "cooldown", "max_actions_per_hour",
}  # fmt: skip


def _promql_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid PromQL double-quoted string


def app_selector(project: str, env: str, app: str) -> str:
    return f"project={_promql_string(project)},env={_promql_string(env)},app={_promql_string(app)}"


def parse_override(doc: object, path: str = "override") -> dict[str, Any]:
    """A tuning of a default rule at some scope: any of OVERRIDE_FIELDS. Returned normalised (as stored)."""
    if not isinstance(doc, Mapping):
        raise invalid(path, f"must be a mapping of: {', '.join(sorted(OVERRIDE_FIELDS))}")
    problems: list[FieldProblem] = []
    for key in sorted(set(map(str, doc)) - OVERRIDE_FIELDS):
        problems.append(
            FieldProblem(f"{path}.{key}", f"unknown field; allowed: {', '.join(sorted(OVERRIDE_FIELDS))}")
        )
    if "enabled" in doc and not isinstance(doc["enabled"], bool):
        problems.append(FieldProblem(f"{path}.enabled", "must be true or false"))
    if "threshold" in doc and (
        isinstance(doc["threshold"], bool)
        or not isinstance(doc["threshold"], int | float)
        or not math.isfinite(doc["threshold"])
    ):
        problems.append(FieldProblem(f"{path}.threshold", "must be a number"))
    if "window" in doc:
        try:
            if parse_duration(doc["window"], f"{path}.window") < 1:
                problems.append(FieldProblem(f"{path}.window", "must be at least 1s"))
        except UserError as exc:
            problems += exc.problems
    _tuning(doc, path, problems)
    if problems:
        raise UserError("the rule override is invalid: nothing was changed", problems=problems)
    return dict(doc)


def _window_text(value: object) -> str:
    return format_duration(parse_duration(value, "window")) if not isinstance(value, str) else value


def render_default(
    default: DefaultRule, project: str, env: str, app: str, overrides: Iterable[Mapping[str, Any]]
) -> AlertRule | None:
    """The default rule for one app after the overrides (least specific first) — None when switched off."""
    merged: dict[str, Any] = {}
    labels: dict[str, str] = {"severity": default.severity}
    annotations = {"summary": default.summary, "description": default.description}
    for o in overrides:
        merged.update({k: v for k, v in o.items() if k not in ("labels", "annotations")})
        labels.update(o.get("labels") or {})
        annotations.update(o.get("annotations") or {})
    if merged.get("enabled") is False:
        return None
    problems: list[FieldProblem] = []
    tuned = _tuning({**merged, "for": merged.get("for", default.for_s)}, default.alert, problems)
    if problems:  # stored overrides were validated when written; a bad one never reaches here
        raise UserError(f"stored override of {default.alert} is invalid", problems=problems)
    expr = default.expr.format(
        sel=app_selector(project, env, app),
        threshold=_format_value(float(merged.get("threshold", default.threshold))),
        window=_window_text(merged.get("window", default.window)),
    )
    return replace(tuned, alert=default.alert, expr=expr, labels=labels, annotations=annotations)


# ---- the state machine: inactive → pending → firing → resolved, as Prometheus evaluates it
@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class AlertState:
    """One active alert of one rule: a label set that the expression currently (or recently) returned."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str  # pending | firing
    active_at: float  # when the expression first returned it
    fired_at: float | None
    last_seen: float  # the last evaluation that returned it
    value: float
    keep_firing_since: float | None = None  # the first evaluation that missed it (keep_firing_for counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "labels": dict(self.labels),
            "annotations": dict(self.annotations), "state": self.state, "active_at": self.active_at,
            "fired_at": self.fired_at, "last_seen": self.last_seen, "value": self.value,
            "keep_firing_since": self.keep_firing_since,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertState:
        return cls(
            d["fingerprint"], dict(d["labels"]), dict(d["annotations"]), d["state"], float(d["active_at"]),
            None if d.get("fired_at") is None else float(d["fired_at"]), float(d["last_seen"]),
            float(d["value"]),
            None if d.get("keep_firing_since") is None else float(d["keep_firing_since"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Transition:
    """What changed in one evaluation: ``to`` is pending, firing or resolved (inactive after pending)."""

    to: str
    alert: AlertState
    at: float


def fingerprint(labels: Mapping[str, str]) -> str:
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def samples_of(data: Mapping[str, Any]) -> list[Sample]:
    """The samples of a Prometheus API ``data`` object; a scalar is one sample without labels."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return [Sample({}, float(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        raise invalid("expr", f"must give an instant vector (it gave {kind})")
    out = []
    for item in result:
        value = float(item["value"][1])
        if math.isnan(value):
            continue
        out.append(Sample({k: v for k, v in item["metric"].items() if k != "__name__"}, value))
    return out


def evaluate(
    rule: AlertRule,
    previous: Mapping[str, AlertState],
    result: Iterable[Sample],
    now: float,
    external: Mapping[str, str] = {},
) -> tuple[dict[str, AlertState], list[Transition]]:
    """One evaluation of ``rule``: the next states (by fingerprint) and what changed. Pure."""
    nxt: dict[str, AlertState] = {}
    changes: list[Transition] = []
    for sample in result:
        # as Prometheus: rule labels are templates over the sample's labels; an empty one removes the label
        labels = dict(sample.labels)
        for k, v in rule.labels.items():
            labels[k] = expand(v, sample.labels, sample.value, external)
        labels = {k: v for k, v in labels.items() if v} | {"alertname": rule.alert}
        fp = fingerprint(labels)
        if fp in nxt:  # the expression returned the same label set twice: Prometheus errors; keep first
            continue
        annotations = {k: expand(v, labels, sample.value, external) for k, v in rule.annotations.items()}
        before = previous.get(fp)
        if before is None:
            state = AlertState(fp, labels, annotations, "pending", now, None, now, sample.value)
            changes.append(Transition("pending", state, now))
        else:
            state = replace(
                before, labels=labels, annotations=annotations, last_seen=now, value=sample.value,
                keep_firing_since=None,
            )  # fmt: skip
        if state.state == "pending" and now - state.active_at >= rule.for_s:
            state = replace(state, state="firing", fired_at=now)
            changes.append(Transition("firing", state, now))
        nxt[fp] = state
    for fp, before in previous.items():
        if fp in nxt:
            continue
        if before.state == "firing" and rule.keep_firing_for_s > 0:
            # as Prometheus: the grace counts from the first evaluation that missed the alert
            since = now if before.keep_firing_since is None else before.keep_firing_since
            if now - since < rule.keep_firing_for_s:
                nxt[fp] = replace(before, keep_firing_since=since)
                continue
        changes.append(Transition("resolved" if before.state == "firing" else "inactive", before, now))
    return nxt, changes


# ---- silences: Alertmanager matchers (=, !=, =~, !~)
@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        hit = re.fullmatch(self.value, actual) is not None if self.is_regex else actual == self.value
        return hit if self.is_equal else not hit

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        return f"{self.name}{op[(self.is_regex, self.is_equal)]}{json.dumps(self.value)}"


_MATCHER_TEXT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def _matcher_value(text: str) -> str:
    """A double-quoted value is a JSON/PromQL string (escapes included); anything else is taken as is."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    return text


def parse_matchers(value: object, path: str = "matchers") -> tuple[Matcher, ...]:
    """Alertmanager API objects ({name, value, isRegex, isEqual}) or text (``app="web"``, ``x=~a.*``)."""
    if not isinstance(value, list) or not value:
        raise invalid(path, 'must be a non-empty list of matchers such as app="web" or severity=~"crit.*"')
    out: list[Matcher] = []
    problems: list[FieldProblem] = []
    for i, item in enumerate(value):
        p = f"{path}.{i}"
        if isinstance(item, str):
            m = _MATCHER_TEXT.match(item)
            if m is None:
                problems.append(
                    FieldProblem(p, f'{item!r} is not a matcher; write name="value" (=, !=, =~, !~)')
                )
                continue
            op = m.group(2)
            matcher = Matcher(m.group(1), _matcher_value(m.group(3)), "~" in op, op in ("=", "=~"))
        elif (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("value"), str)
        ):
            matcher = Matcher(
                item["name"], item["value"], bool(item.get("isRegex")), bool(item.get("isEqual", True))
            )
        else:
            problems.append(
                FieldProblem(p, 'must be {name, value, isRegex?, isEqual?} or text like app="web"')
            )
            continue
        if not LABEL_NAME.match(matcher.name):
            problems.append(FieldProblem(f"{p}.name", "a label name is letters, digits and _"))
            continue
        if matcher.is_regex:
            try:
                re.compile(matcher.value)
            except re.error as exc:
                problems.append(FieldProblem(f"{p}.value", f"not a regular expression: {exc}"))
                continue
        out.append(matcher)
    if problems:
        raise UserError("the matchers are invalid: nothing was changed", problems=problems)
    if all(m.matches({}) for m in out):
        raise invalid(path, "these matchers match every alert (even one with no labels); name a label value")
    return tuple(out)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
