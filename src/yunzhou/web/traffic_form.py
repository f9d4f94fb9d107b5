"""Pure helpers behind the Traffic tab: the app's rollout strategy and common traffic policy (retries,
timeouts, rate limit, access) as form values, and back as a partial settings document for
``PATCH …/settings`` — the request ``yunzhou settings set`` makes. A cleared field is sent as null, which
removes that key (a JSON merge patch), so switching canary → rolling drops the canary's steps.

Canary steps are one line each: ``WEIGHT [pause=DURATION] [window=… maxErrorRate=… maxP99Ms=…
minRequests=… query='…' maxValue=…]`` — quoted shell-style, so a PromQL query may hold spaces.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from yunzhou.domain.errors import FieldProblem
from yunzhou.web.forms import FieldErrors, errors_by_prefix, number_or_text

Json = dict[str, Any]
STRATEGIES = ("rolling", "canary", "blue-green")
RETRY_CONDITIONS = ("connect-failure", "reset", "gateway-error", "5xx")  # domain.traffic.RETRY_CONDITIONS
ACCESS_DEFAULTS = ("allow-environment", "deny")
ANALYSIS_KEYS = ("window", "maxErrorRate", "maxP99Ms", "minRequests", "query", "maxValue")
_LIST_SPLIT_RE = re.compile(r"[\s,]+")
_STEP_RE = re.compile(r"step (\d+)/(\d+): (\d+)% to release (\d+)")
PROGRESSIVE = frozenset({"canary", "blue-green"})
ACTIVE_ROLLOUT_STATES = frozenset({"pending", "progressing"})

# API problem paths → the form field they concern; the first matching prefix wins.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("rollout.steps", "steps"),
    ("rollout.previewHost", "preview_host"),
    ("rollout", "strategy"),
    ("traffic.retries.retryOn", "retry_on"),
    ("traffic.retries", "retries_attempts"),
    ("traffic.timeouts.overall", "timeout_overall"),
    ("traffic.timeouts", "timeout_per_try"),
    ("traffic.rateLimit.burst", "rate_burst"),
    ("traffic.rateLimit", "rate_rps"),
    ("traffic.access.allow", "access_allow"),
    ("traffic.access.deny", "access_deny"),
    ("traffic.access", "access_default"),
)


def _names(text: str) -> list[str]:
    return [name for name in _LIST_SPLIT_RE.split(text.strip()) if name]


def step_line(step: Mapping[str, Any]) -> str:
    """One canary step as the form writes it: ``25 window=60s maxErrorRate=0.01``."""
    parts = [str(step.get("weight", ""))]
    if step.get("pause") is not None:
        parts.append(f"pause={step['pause']}")
    analysis = step.get("analysis") or {}
    parts += [f"{key}={shlex.quote(str(analysis[key]))}" for key in ANALYSIS_KEYS if key in analysis]
    return " ".join(parts)


def parse_steps(text: str, problems: list[FieldProblem]) -> list[Json]:
    """The steps textarea → ``rollout.steps``; what cannot be read is a problem on the ``steps`` field."""
    steps: list[Json] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            problems.append(FieldProblem("steps", f"line {number}: {exc}"))
            continue
        weight, *options = words
        if not weight.isdecimal():
            problems.append(FieldProblem("steps", f"line {number}: start with the weight, 1-100"))
            continue
        step: Json = {"weight": int(weight)}
        analysis: Json = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in ("pause", *ANALYSIS_KEYS):
                allowed = ", ".join(f"{k}=" for k in ("pause", *ANALYSIS_KEYS))
                problems.append(FieldProblem("steps", f"line {number}: {option!r} is not one of {allowed}"))
            elif key == "pause":
                step["pause"] = value
            else:
                analysis[key] = value if key in ("window", "query") else number_or_text(value)
        if analysis:
            step["analysis"] = analysis
        steps.append(step)
    return steps


@dataclass
class TrafficForm:
    """What the Traffic tab's form holds; ``build`` turns it into the partial settings it submits."""

    strategy: str = "rolling"
    steps: str = ""
    preview_host: str = ""
    retries_attempts: str = ""
    retry_on: list[str] = field(default_factory=list)
    timeout_per_try: str = ""
    timeout_overall: str = ""
    rate_rps: str = ""
    rate_burst: str = ""
    access_default: str = "allow-environment"
    access_allow: str = ""
    access_deny: str = ""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TrafficForm:
        rollout = settings.get("rollout") or {}
        traffic = settings.get("traffic") or {}
        retries = traffic.get("retries") or {}
        timeouts = traffic.get("timeouts") or {}
        rate = traffic.get("rateLimit") or {}
        access = traffic.get("access") or {}

        def text(value: object) -> str:
            return "" if value is None else str(value)

        return cls(
            strategy=str(rollout.get("strategy") or "rolling"),
            steps="\n".join(step_line(step) for step in rollout.get("steps") or []),
            preview_host=text(rollout.get("previewHost")),
            retries_attempts=text(retries.get("attempts")) if retries else "",
            retry_on=list(retries.get("retryOn") or []),
            timeout_per_try=text(timeouts.get("perTry")),
            timeout_overall=text(timeouts.get("overall")),
            rate_rps=_number_text(rate.get("rps")),
            rate_burst=text(rate.get("burst")),
            access_default=str(access.get("default") or "allow-environment"),
            access_allow=", ".join(access.get("allow") or []),
            access_deny=", ".join(access.get("deny") or []),
        )

    @classmethod
    def from_form(cls, form: Any) -> TrafficForm:
        """From submitted form data (``getlist`` for the retry conditions' checkboxes)."""
        values = {name: str(form.get(name) or "").strip() for name in cls.field_names() if name != "retry_on"}
        values["steps"] = str(form.get("steps") or "")
        chosen = [str(value) for value in form.getlist("retry_on")]
        return cls(**values, retry_on=[c for c in RETRY_CONDITIONS if c in chosen])

    def build(self, current: Mapping[str, Any]) -> tuple[Json, list[FieldProblem]]:
        """(partial settings, problems found before anything is sent). ``current``: the effective settings."""
        problems: list[FieldProblem] = []
        if self.strategy not in STRATEGIES:
            problems.append(FieldProblem("strategy", f"must be one of: {', '.join(STRATEGIES)}"))
        if self.access_default not in ACCESS_DEFAULTS:
            problems.append(FieldProblem("access_default", f"must be one of: {', '.join(ACCESS_DEFAULTS)}"))
        rollout: Json = {"strategy": self.strategy, "previewHost": None, "steps": None, "analysis": None}
        if self.strategy in PROGRESSIVE:
            rollout["previewHost"] = self.preview_host or None
        if self.strategy == "canary":
            rollout["steps"] = parse_steps(self.steps, problems) or None
        if self.strategy == "blue-green":
            rollout.pop("analysis")  # not in this form: a blue-green analysis from the YAML stays as it is
        traffic: Json = {
            "retries": self._retries(),
            "timeouts": {"perTry": self.timeout_per_try or None, "overall": self.timeout_overall or None}
            if self.timeout_per_try or self.timeout_overall
            else None,
            "rateLimit": self._rate_limit(current),
            "access": {
                "default": self.access_default,
                "allow": _names(self.access_allow) or None,
                "deny": _names(self.access_deny) or None,
            },
        }
        return {"rollout": rollout, "traffic": traffic}, problems

    def _retries(self) -> Json | None:
        if not self.retries_attempts:
            return None  # no retries (a budget without attempts is not a policy)
        return {"attempts": number_or_text(self.retries_attempts), "retryOn": self.retry_on or None}

    def _rate_limit(self, current: Mapping[str, Any]) -> Json | None:
        if self.rate_rps or self.rate_burst:
            return {
                "rps": number_or_text(self.rate_rps) if self.rate_rps else None,
                "burst": number_or_text(self.rate_burst) if self.rate_burst else None,
            }
        per_caller = ((current.get("traffic") or {}).get("rateLimit") or {}).get("perCaller")
        return {"rps": None, "burst": None} if per_caller else None  # keep a perCaller limit set in YAML


def _number_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def traffic_errors(problems: Iterable[FieldProblem]) -> FieldErrors:
    """Problems (the form's own, or the API's with ``settings.…`` paths) sorted to the fields they concern."""
    return errors_by_prefix(problems, TrafficForm.field_names(), _FIELDS)


def canary_progress(rollout: Mapping[str, Any] | None) -> Json | None:
    """The rollout in progress a Promote/Abort applies to (canary or blue-green), with its step if known."""
    if not rollout or rollout.get("state") not in ACTIVE_ROLLOUT_STATES:
        return None
    strategy = (rollout.get("strategy") or {}).get("strategy")
    if strategy not in PROGRESSIVE:
        return None
    out: Json = {
        "strategy": strategy,
        "to_release": rollout.get("to_release"),
        "message": rollout.get("message"),
    }
    match = _STEP_RE.search(str(rollout.get("message") or ""))
    if match:
        out.update(step=int(match[1]), steps=int(match[2]), weight=int(match[3]))
    return out
