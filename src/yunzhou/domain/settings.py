"""Platform settings: what Score does not say (replicas, rollout strategy, routes).

They live in ``yunzhou.yaml`` beside ``score.yaml``::

    replicas: 2
    rollout: {strategy: rolling, maxSurge: 1, maxUnavailable: 0}
    routes:
      - {host: orders.example.test, path: /, port: web}
    environments:
      prod: {replicas: 3}

``environments.<env>`` is deep-merged over the rest for that environment. A release stores the
*effective* settings (overrides applied, defaults filled in), so it is self-contained.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.autoscale import AutoscalingPolicy, collect_autoscaling
from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.metrics import MetricsEndpoint, metrics_problems, parse_metrics_endpoint
from yunzhou.domain.names import is_dns_name
from yunzhou.domain.traffic import Progressive, TrafficPolicy, collect_traffic, parse_progressive

MAX_REPLICAS = 1000
_PERCENT_RE = re.compile(r"^(100|[1-9]?[0-9])%$")
_TOP_KEYS = ("replicas", "rollout", "routes", "environments", "autoscaling", "traffic", "metrics", "https")
_HTTPS_KEYS = ("redirect", "hstsMaxAge")
HSTS_MAX = 63_072_000  # two years, the preload list's ceiling
_ROLLOUT_KEYS = ("strategy", "maxSurge", "maxUnavailable", "progressDeadlineSeconds")
#: How long a rollout may go without reaching its end before it fails (``ProgressDeadlineExceeded``), as
#: Kubernetes' Deployment default; ``rollout.progressDeadlineSeconds`` sets it per app.
DEFAULT_PROGRESS_DEADLINE_S = 600
PROGRESS_DEADLINE_RANGE = (10, 86_400)
_ROUTE_KEYS = ("host", "path", "port")
STRATEGIES = ("rolling", "canary", "blue-green")  # canary/blue-green: domain/traffic.py


@dataclass(frozen=True)
class RolloutStrategy:
    strategy: str = "rolling"
    max_surge: int | str = 1
    max_unavailable: int | str = 0
    progress_deadline_seconds: int | None = None  # None: DEFAULT_PROGRESS_DEADLINE_S

    def resolve(self, replicas: int) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) as counts; Kubernetes rounds surge up, unavailable down."""
        surge = _scale(self.max_surge, replicas, round_up=True)
        unavailable = _scale(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            surge = 1
        return surge, unavailable


def _scale(value: int | str, replicas: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    whole, rest = divmod(pct * replicas, 100)
    return whole + (1 if round_up and rest else 0)


@dataclass(frozen=True)
class Route:
    host: str
    path: str = "/"
    port: str | int | None = None


@dataclass(frozen=True)
class HttpsSettings:
    """What an app served over HTTPS (its environment's ``tls``, docs/tls.md) does for plain HTTP."""

    redirect: bool = False  # plain-HTTP requests get 308 to https://
    hsts_max_age: int | None = None  # Strict-Transport-Security on HTTPS answers


@dataclass(frozen=True)
class PlatformSettings:
    replicas: int | None = None
    rollout: RolloutStrategy = field(default_factory=RolloutStrategy)
    routes: tuple[Route, ...] = ()
    traffic: TrafficPolicy = field(default_factory=TrafficPolicy)  # domain/traffic.py
    progressive: Progressive | None = None  # rollout steps for canary / blue-green
    autoscaling: AutoscalingPolicy | None = None  # domain/autoscale/policy.py
    metrics: MetricsEndpoint | None = None  # the app's own Prometheus endpoint (domain/metrics.py)
    https: HttpsSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.replicas is not None:
            out["replicas"] = self.replicas
        out["rollout"] = {
            "strategy": self.rollout.strategy,
            "maxSurge": self.rollout.max_surge,
            "maxUnavailable": self.rollout.max_unavailable,
        }
        if self.rollout.progress_deadline_seconds is not None:
            out["rollout"]["progressDeadlineSeconds"] = self.rollout.progress_deadline_seconds
        out["routes"] = [
            {k: v for k, v in (("host", r.host), ("path", r.path), ("port", r.port)) if v is not None}
            for r in self.routes
        ]
        if self.progressive is not None:
            out["rollout"].update(self.progressive.to_dict())
        if not self.traffic.is_empty():
            out["traffic"] = self.traffic.to_dict()
        if self.autoscaling is not None:
            out["autoscaling"] = self.autoscaling.to_dict()
        if self.metrics is not None:
            out["metrics"] = self.metrics.to_dict()
        if self.https is not None:
            out["https"] = {"redirect": self.https.redirect}
            if self.https.hsts_max_age is not None:
                out["https"]["hstsMaxAge"] = self.https.hsts_max_age
        return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``over`` replaces what ``base`` had."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7396): like ``deep_merge``, but a ``None`` in ``patch`` removes the key.

    How a settings PATCH can drop what a form clears, e.g. ``rollout.steps`` when canary becomes rolling.
    """
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge_patch({}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def for_environment(doc: Mapping[str, Any] | None, env: str) -> dict[str, Any]:
    """The settings document with ``environments.<env>`` applied and the environments map dropped."""
    if not doc:
        return {}
    base = {k: v for k, v in doc.items() if k != "environments"}
    overrides = doc.get("environments") or {}
    if isinstance(overrides, Mapping) and isinstance(overrides.get(env), Mapping):
        return deep_merge(base, overrides[env])
    return base


def _unknown(doc: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> list[FieldProblem]:
    return [
        FieldProblem(f"{prefix}{key}", f"unknown field {key!r}; allowed: {', '.join(allowed)}")
        for key in doc
        if key not in allowed
    ]


def _count_or_percent(value: object, path: str, problems: list[FieldProblem]) -> int | str | None:
    if isinstance(value, bool) or not (
        (isinstance(value, int) and 0 <= value <= MAX_REPLICAS)
        or (isinstance(value, str) and _PERCENT_RE.fullmatch(value))
    ):
        problems.append(FieldProblem(path, f"must be an integer 0-{MAX_REPLICAS} or a percentage like '25%'"))
        return None
    return value


def parse_settings(doc: object, env: str | None = None) -> PlatformSettings:
    """Validate a settings document (collecting every problem) and return the effective settings."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise UserError("settings are invalid", problems=[FieldProblem("settings", "must be a mapping")])
    problems = _unknown(doc, _TOP_KEYS, "settings.")
    envs = doc.get("environments")
    if envs is not None and not (
        isinstance(envs, Mapping) and all(isinstance(v, Mapping) for v in envs.values())
    ):
        problems.append(FieldProblem("settings.environments", "must map environment names to settings"))
    elif isinstance(envs, Mapping):
        for name, over in envs.items():
            problems += _unknown(
                over, tuple(k for k in _TOP_KEYS if k != "environments"), f"settings.environments.{name}."
            )
    effective = (
        for_environment(doc, env)
        if env and not problems
        else {k: v for k, v in doc.items() if k != "environments"}
    )

    replicas = effective.get("replicas")
    if replicas is not None and (
        isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS
    ):
        problems.append(FieldProblem("settings.replicas", f"must be an integer 0-{MAX_REPLICAS}"))

    rollout = RolloutStrategy()
    progressive: Progressive | None = None
    raw_rollout = effective.get("rollout")
    if raw_rollout is not None:
        if not isinstance(raw_rollout, Mapping):
            problems.append(
                FieldProblem("settings.rollout", "must be a mapping with strategy, maxSurge, maxUnavailable")
            )
        else:
            progressive = parse_progressive(raw_rollout, "settings.rollout", problems)
            if raw_rollout.get("strategy") not in ("canary", "blue-green"):
                problems += _unknown(raw_rollout, _ROLLOUT_KEYS, "settings.rollout.")
            strategy = raw_rollout.get("strategy", "rolling")
            if strategy not in STRATEGIES:
                problems.append(
                    FieldProblem(
                        "settings.rollout.strategy",
                        f"{strategy!r} is not supported; allowed: {', '.join(STRATEGIES)}",
                    )
                )
            surge = _count_or_percent(raw_rollout.get("maxSurge", 1), "settings.rollout.maxSurge", problems)
            unavail = _count_or_percent(
                raw_rollout.get("maxUnavailable", 0), "settings.rollout.maxUnavailable", problems
            )
            deadline = _progress_deadline(raw_rollout.get("progressDeadlineSeconds"), problems)
            if surge is not None and unavail is not None:
                if surge in (0, "0%") and unavail in (0, "0%"):
                    problems.append(
                        FieldProblem("settings.rollout", "maxSurge and maxUnavailable cannot both be 0")
                    )
                rollout = RolloutStrategy(str(strategy), surge, unavail, deadline)

    routes: list[Route] = []
    raw_routes = effective.get("routes")
    if raw_routes is not None:
        if not isinstance(raw_routes, list):
            problems.append(FieldProblem("settings.routes", "must be a list of {host, path, port}"))
        else:
            for i, raw in enumerate(raw_routes):
                routes += _parse_route(raw, f"settings.routes.{i}", problems)
            seen: set[tuple[str, str]] = set()
            for i, r in enumerate(routes):
                if (r.host, r.path) in seen:
                    problems.append(FieldProblem(f"settings.routes.{i}", f"duplicate route {r.host}{r.path}"))
                seen.add((r.host, r.path))
    autoscaling = collect_autoscaling(effective.get("autoscaling"), "settings.autoscaling", problems)
    traffic = collect_traffic(effective.get("traffic"), "settings.traffic", problems)
    problems += metrics_problems(effective.get("metrics"))
    https = _parse_https(effective.get("https"), problems)
    if problems:
        raise UserError("settings are invalid", problems=problems)
    return PlatformSettings(
        replicas=replicas,
        rollout=rollout,
        routes=tuple(routes),
        autoscaling=autoscaling,
        metrics=parse_metrics_endpoint(effective.get("metrics")),
        traffic=traffic,
        progressive=progressive,
        https=https,
    )


def _parse_https(raw: object, problems: list[FieldProblem]) -> HttpsSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem("settings.https", "must be a mapping with redirect, hstsMaxAge"))
        return None
    problems += _unknown(raw, _HTTPS_KEYS, "settings.https.")
    redirect = raw.get("redirect", False)
    if not isinstance(redirect, bool):
        problems.append(FieldProblem("settings.https.redirect", "must be true or false"))
    hsts = raw.get("hstsMaxAge")
    if hsts is not None and (
        isinstance(hsts, bool) or not isinstance(hsts, int) or not 0 <= hsts <= HSTS_MAX
    ):
        problems.append(
            FieldProblem(
                "settings.https.hstsMaxAge", f"must be whole seconds from 0 to {HSTS_MAX} (two years)"
            )
        )
        hsts = None
    return HttpsSettings(redirect is True, hsts)


def _progress_deadline(value: object, problems: list[FieldProblem]) -> int | None:
    low, high = PROGRESS_DEADLINE_RANGE
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(
            FieldProblem(
                "settings.rollout.progressDeadlineSeconds",
                f"must be an integer {low}-{high} (seconds; default {DEFAULT_PROGRESS_DEADLINE_S})",
            )
        )
        return None
    return value


def progress_deadline(settings: Mapping[str, Any]) -> float:
    """The rollout's progress deadline in seconds, from a release's effective settings."""
    rollout = settings.get("rollout")
    value = rollout.get("progressDeadlineSeconds") if isinstance(rollout, Mapping) else None
    return (
        float(value)
        if isinstance(value, int) and not isinstance(value, bool)
        else DEFAULT_PROGRESS_DEADLINE_S
    )


def _parse_route(raw: object, path: str, problems: list[FieldProblem]) -> list[Route]:
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping with host, path, port"))
        return []
    before = len(problems)
    problems += _unknown(raw, _ROUTE_KEYS, f"{path}.")
    host = raw.get("host")
    if not is_dns_name(host):
        problems.append(
            FieldProblem(f"{path}.host", "required: a lower-case DNS name such as orders.example.test")
        )
    route_path = raw.get("path", "/")
    if (
        not isinstance(route_path, str)
        or not route_path.startswith("/")
        or any(c in route_path for c in " ?#")
    ):
        problems.append(
            FieldProblem(f"{path}.path", "must be a URL path starting with '/' (no spaces, '?' or '#')")
        )
    port = raw.get("port")
    if port is not None and (
        isinstance(port, bool)
        or not ((isinstance(port, int) and 1 <= port <= 65535) or (isinstance(port, str) and port))
    ):
        problems.append(FieldProblem(f"{path}.port", "must be a service port name or an integer 1-65535"))
    if len(problems) > before:
        return []
    return [Route(host=str(host), path=str(route_path), port=port)]


def set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_dotted(d, "rollout.maxSurge", 2)`` — how the CLI's key=value pairs become a partial document."""
    keys = dotted.split(".")
    cur = doc
    for key in keys[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[keys[-1]] = value
