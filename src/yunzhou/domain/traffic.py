"""Traffic policy: one model for both runtimes (the local router enforces it, Kubernetes renders it).

It lives under the ``traffic`` key of ``yunzhou.yaml`` (and may be overridden per environment like every
other setting). Every block is optional; an absent block means "no policy of that kind"::

    traffic:
      routes:                              # evaluated in order; first match wins; at most 50
        - name: pinned-preview             # DNS label, unique; names the rule in metrics and errors
          match:                           # all given conditions must hold (absent match = everything)
            host: orders.example.test      # optional: one of the app's hosts
            path: {prefix: /api}           # or {exact: /healthz}
            headers:                       # name (lower-case) → exactly one of exact / prefix / regex
              x-canary: {exact: always}
              user-agent: {regex: "^Mozilla/.*Mobile"}   # RE2 syntax (as Envoy): linear time, ≤ 256 chars
          to:                              # optional: absent = the rollout's current split
            - {release: canary, weight: 100}             # release: stable | canary; weights sum to 100
          timeouts: {perTry: 500ms, overall: 2s}         # route-level blocks replace the app-level ones
          retries: {attempts: 2}
          rateLimit: {rps: 10, burst: 20}
      timeouts: {perTry: 2s, overall: 10s} # overall ≥ perTry
      retries:
        attempts: 3                        # retries after the first try (0-10)
        retryOn: [connect-failure, reset, gateway-error, 5xx]  # default: the first three
        budget: {percent: 20, minPerSecond: 3}   # retries ≤ 20% of requests (+3/s) so they cannot amplify
      connectionPool: {maxConnections: 100, maxPending: 50, maxRequestsPerConnection: 1000}
      outlierDetection:
        consecutive5xx: 5                  # eject after N consecutive 5xx answers (0 = off)
        consecutiveGatewayErrors: 3        # … or N consecutive 502/503/504/connect failures (0 = off)
        interval: 10s                      # how often ejections are re-evaluated
        baseEjectionTime: 30s              # ejected for base × number of times this instance was ejected
        maxEjectionPercent: 50             # never more than this share of instances ejected at once
      loadBalancer:
        policy: least-requests             # round-robin (default) | least-requests | consistent-hash
        hashOn: {header: x-user}           # consistent-hash only: {header|cookie: NAME} | {source: true}
      rateLimit:                           # token bucket per app (all callers together) …
        rps: 100
        burst: 200
        perCaller: {rps: 10, burst: 20}    # … and one bucket per caller (calling app, or client address)
      access:                              # who may call this app (app-to-app calls through the router)
        default: allow-environment         # allow-environment (same project/env may call) | deny
        allow: [frontend, shop/staging/*]  # app (same env) | project/env/app | project/env/*
        deny: [billing]                    # deny wins over allow and over the default
        external: true                     # requests from outside (ingress, no caller identity)
      mtls: true                           # k8s: PeerAuthentication STRICT; local: identity by listener

Parsing collects every problem with its field path (``settings.traffic.routes.0.to``) and raises one
``UserError``. ``TrafficPolicy.to_dict()`` gives the canonical document (durations as strings such as
``"1.5s"``), which is what a release stores and what renderers may read. Durations are held as float
seconds; ``format_duration`` turns them back into text.

Canary/blue-green rollouts (``rollout: {strategy: canary, steps: …}``) are parsed by
``parse_progressive`` below and hooked into ``settings.rollout`` by ``domain/settings.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.names import DNS_LABEL_RE, is_dns_name

MAX_TRAFFIC_ROUTES = 50
MAX_HEADERS_PER_MATCH = 16
MAX_REGEX_LENGTH = 256
MAX_REGEX_PROGRAM = 2000
MAX_RETRIES = 10
MAX_RPS = 1_000_000
MAX_DURATION_S = 24 * 3600.0
TRACKS = ("stable", "canary")
RETRY_CONDITIONS = ("connect-failure", "reset", "gateway-error", "5xx")
DEFAULT_RETRY_ON = ("connect-failure", "reset", "gateway-error")
LB_POLICIES = ("round-robin", "least-requests", "consistent-hash")
ACCESS_DEFAULTS = ("allow-environment", "deny")
# Caller identity headers: the router strips them from outside requests and sets them itself.
CALLER_HEADER = "x-yunzhou-caller"
CANARY_HEADER = "x-canary"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 1 << 20
_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HEADER_NAME_RE = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_CALLER_RE = re.compile(
    r"^(?:(?P<project>[a-z0-9-]{1,63})/(?P<env>[a-z0-9-]{1,63})/)?(?P<app>[a-z0-9-]{1,63}|\*)$"
)
_TOP_KEYS = (
    "routes",
    "timeouts",
    "retries",
    "connectionPool",
    "outlierDetection",
    "loadBalancer",
    "rateLimit",
    "access",
    "mtls",
)


# --- model -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderMatch:
    """One header condition; ``kind`` is exact | prefix | regex."""

    name: str
    kind: str
    value: str


@dataclass(frozen=True)
class RouteMatch:
    host: str | None = None
    path_kind: str | None = None  # "prefix" | "exact"
    path: str | None = None
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class Destination:
    release: str  # stable | canary
    weight: int


@dataclass(frozen=True)
class Timeouts:
    per_try: float | None = None
    overall: float | None = None


@dataclass(frozen=True)
class RetryBudget:
    percent: float = 20.0
    min_per_second: float = 3.0


@dataclass(frozen=True)
class Retries:
    attempts: int
    on: tuple[str, ...] = DEFAULT_RETRY_ON
    budget: RetryBudget = field(default_factory=RetryBudget)


@dataclass(frozen=True)
class ConnectionPool:
    max_connections: int | None = None
    max_pending: int | None = None
    max_requests_per_connection: int | None = None


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 50


@dataclass(frozen=True)
class LoadBalancer:
    policy: str = "round-robin"
    hash_on: str | None = None  # header | cookie | source
    hash_key: str | None = None  # header or cookie name


@dataclass(frozen=True)
class RateLimit:
    """Token bucket: ``rps`` tokens per second, at most ``burst`` saved up."""

    rps: float
    burst: int


@dataclass(frozen=True)
class RateLimits:
    overall: RateLimit | None = None
    per_caller: RateLimit | None = None


@dataclass(frozen=True)
class CallerRef:
    """``app`` (project/env None → same environment as the callee) or project/env/app|*."""

    app: str
    project: str | None = None
    env: str | None = None

    def covers(self, project: str, env: str, app: str, *, own_project: str, own_env: str) -> bool:
        want_project = self.project if self.project is not None else own_project
        want_env = self.env if self.env is not None else own_env
        return want_project == project and want_env == env and self.app in ("*", app)

    def __str__(self) -> str:
        return self.app if self.project is None else f"{self.project}/{self.env}/{self.app}"


@dataclass(frozen=True)
class AccessPolicy:
    default: str = "allow-environment"
    allow: tuple[CallerRef, ...] = ()
    deny: tuple[CallerRef, ...] = ()
    external: bool = True

    def decide(
        self, caller: tuple[str, str, str] | None, *, own_project: str, own_env: str
    ) -> tuple[bool, str]:
        """(allowed, the rule that decided) for a caller (project, env, app) or None for outside traffic."""
        if caller is None:
            return self.external, "access.external"
        project, env, app = caller
        for i, ref in enumerate(self.deny):
            if ref.covers(project, env, app, own_project=own_project, own_env=own_env):
                return False, f"access.deny.{i}"
        for i, ref in enumerate(self.allow):
            if ref.covers(project, env, app, own_project=own_project, own_env=own_env):
                return True, f"access.allow.{i}"
        if self.default == "allow-environment":
            same = (project, env) == (own_project, own_env)
            return same, "access.default"
        return False, "access.default"


@dataclass(frozen=True)
class TrafficRoute:
    name: str
    match: RouteMatch = field(default_factory=RouteMatch)
    to: tuple[Destination, ...] = ()  # empty = the rollout's current split
    timeouts: Timeouts | None = None
    retries: Retries | None = None
    rate_limit: RateLimits | None = None


@dataclass(frozen=True)
class TrafficPolicy:
    routes: tuple[TrafficRoute, ...] = ()
    timeouts: Timeouts | None = None
    retries: Retries | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    load_balancer: LoadBalancer = field(default_factory=LoadBalancer)
    rate_limit: RateLimits | None = None
    access: AccessPolicy = field(default_factory=AccessPolicy)
    mtls: bool = False

    def is_empty(self) -> bool:
        return self == TrafficPolicy()

    def to_dict(self) -> dict[str, Any]:
        return _policy_to_dict(self)


# --- progressive delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    window: float = 60.0
    max_error_rate: float | None = 0.01
    max_p99_ms: float | None = None
    query: str | None = None  # PromQL; the step fails when its value (the highest sample) is > max_value
    min_requests: int = 20
    max_value: float | None = None  # required with query


@dataclass(frozen=True)
class CanaryStep:
    weight: int
    pause: float | None = None  # seconds; None with no analysis = wait for `rollout promote`
    analysis: Analysis | None = None


@dataclass(frozen=True)
class Progressive:
    strategy: str  # canary | blue-green
    steps: tuple[CanaryStep, ...] = ()
    preview_host: str | None = None  # blue-green (and canary) preview: all of it goes to the new release
    analysis: Analysis | None = None  # blue-green: checked on preview traffic before switching
    allow_no_traffic: bool = False  # an analysis with no data promotes instead of waiting (docs/traffic.md)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy}
        if self.allow_no_traffic:
            out["allowNoTraffic"] = True
        if self.steps:
            out["steps"] = [_step_to_dict(s) for s in self.steps]
        if self.preview_host:
            out["previewHost"] = self.preview_host
        if self.analysis:
            out["analysis"] = _analysis_to_dict(self.analysis)
        return out


# --- parsing ---------------------------------------------------------------------------------------


def parse_duration(
    value: object, path: str, problems: list[FieldProblem], *, allow_zero: bool = False
) -> float | None:
    """``"500ms"``, ``"2s"``, ``"1.5m"``, ``"1h"`` → seconds (positive, at most a day)."""
    if isinstance(value, str):
        m = _DURATION_RE.fullmatch(value)
        if m:
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
            if (seconds > 0 or allow_zero) and seconds <= MAX_DURATION_S:
                return seconds
    problems.append(FieldProblem(path, "must be a duration such as 500ms, 2s, 1m or 1h (up to 24h)"))
    return None


def format_duration(seconds: float) -> str:
    """Seconds → the shortest exact text: 0.5 → "500ms", 30 → "30s", 1.5 → "1.5s"."""
    ms = round(seconds * 1000, 3)
    if ms < 1000 and ms == int(ms):
        return f"{int(ms)}ms"
    return f"{round(seconds, 3):g}s"


def parse_traffic(raw: object, path: str = "settings.traffic") -> TrafficPolicy:
    """Validate the ``traffic`` block (collecting every problem) and return the policy."""
    problems: list[FieldProblem] = []
    policy = collect_traffic(raw, path, problems)
    if problems:
        raise UserError("traffic policy is invalid", problems=problems)
    return policy


def collect_traffic(raw: object, path: str, problems: list[FieldProblem]) -> TrafficPolicy:
    """Like ``parse_traffic`` but appends problems to ``problems`` (for settings parsing)."""
    if raw is None:
        return TrafficPolicy()
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, "must be a mapping; see docs/traffic.md"))
        return TrafficPolicy()
    before = len(problems)
    problems += _unknown(raw, _TOP_KEYS, path)
    routes = _routes(raw.get("routes"), f"{path}.routes", problems)
    timeouts = _timeouts(raw.get("timeouts"), f"{path}.timeouts", problems)
    retries = _retries(raw.get("retries"), f"{path}.retries", problems)
    pool = _pool(raw.get("connectionPool"), f"{path}.connectionPool", problems)
    outlier = _outlier(raw.get("outlierDetection"), f"{path}.outlierDetection", problems)
    lb = _load_balancer(raw.get("loadBalancer"), f"{path}.loadBalancer", problems)
    rate = _rate_limits(raw.get("rateLimit"), f"{path}.rateLimit", problems)
    access = _access(raw.get("access"), f"{path}.access", problems)
    mtls = raw.get("mtls", False)
    if not isinstance(mtls, bool):
        problems.append(FieldProblem(f"{path}.mtls", "must be true or false"))
    if len(problems) > before:
        return TrafficPolicy()
    return TrafficPolicy(
        routes=routes,
        timeouts=timeouts,
        retries=retries,
        connection_pool=pool,
        outlier_detection=outlier,
        load_balancer=lb or LoadBalancer(),
        rate_limit=rate,
        access=access or AccessPolicy(),
        mtls=bool(mtls),
    )


def _unknown(doc: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> list[FieldProblem]:
    return [
        FieldProblem(f"{path}.{key}", f"unknown field {key!r}; allowed: {', '.join(allowed)}")
        for key in doc
        if key not in allowed
    ]


def _mapping(
    raw: object, path: str, problems: list[FieldProblem], allowed: tuple[str, ...]
) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(path, f"must be a mapping with {', '.join(allowed)}"))
        return None
    problems += _unknown(raw, allowed, path)
    return raw


def _int(
    raw: Mapping[str, Any],
    key: str,
    path: str,
    problems: list[FieldProblem],
    lo: int,
    hi: int,
    default: int | None,
) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(FieldProblem(f"{path}.{key}", f"must be an integer {lo}-{hi}"))
        return None
    return value


def _number(
    raw: Mapping[str, Any],
    key: str,
    path: str,
    problems: list[FieldProblem],
    lo: float,
    hi: float,
    default: float | None,
) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        problems.append(FieldProblem(f"{path}.{key}", f"must be a number {lo:g}-{hi:g}"))
        return None
    return float(value)


def _routes(raw: object, path: str, problems: list[FieldProblem]) -> tuple[TrafficRoute, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(FieldProblem(path, "must be a list of {name, match, to, …}"))
        return ()
    if len(raw) > MAX_TRAFFIC_ROUTES:
        problems.append(FieldProblem(path, f"at most {MAX_TRAFFIC_ROUTES} routes"))
        return ()
    out: list[TrafficRoute] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        rpath = f"{path}.{i}"
        doc = _mapping(item, rpath, problems, ("name", "match", "to", "timeouts", "retries", "rateLimit"))
        if doc is None:
            if item is None:
                problems.append(FieldProblem(rpath, "must be a mapping with name, match, to"))
            continue
        name = doc.get("name")
        if not isinstance(name, str) or not DNS_LABEL_RE.fullmatch(name):
            problems.append(FieldProblem(f"{rpath}.name", "required: a DNS label such as pinned-preview"))
        elif name in names:
            problems.append(FieldProblem(f"{rpath}.name", f"duplicate route name {name!r}"))
        else:
            names.add(name)
        match = _match(doc.get("match"), f"{rpath}.match", problems)
        to = _destinations(doc.get("to"), f"{rpath}.to", problems)
        out.append(
            TrafficRoute(
                name=str(name),
                match=match,
                to=to,
                timeouts=_timeouts(doc.get("timeouts"), f"{rpath}.timeouts", problems),
                retries=_retries(doc.get("retries"), f"{rpath}.retries", problems),
                rate_limit=_rate_limits(doc.get("rateLimit"), f"{rpath}.rateLimit", problems),
            )
        )
    return tuple(out)


def _match(raw: object, path: str, problems: list[FieldProblem]) -> RouteMatch:
    doc = _mapping(raw, path, problems, ("host", "path", "headers"))
    if doc is None:
        return RouteMatch()
    host = doc.get("host")
    if host is not None and not is_dns_name(host):
        problems.append(
            FieldProblem(f"{path}.host", "must be a lower-case DNS name such as orders.example.test")
        )
        host = None
    path_kind = path_value = None
    raw_path = doc.get("path")
    if raw_path is not None:
        if (
            not isinstance(raw_path, Mapping)
            or len(raw_path) != 1
            or next(iter(raw_path)) not in ("prefix", "exact")
        ):
            problems.append(FieldProblem(f"{path}.path", "must be {prefix: /p} or {exact: /p}"))
        else:
            path_kind, path_value = next(iter(raw_path.items()))
            if (
                not isinstance(path_value, str)
                or not path_value.startswith("/")
                or len(path_value) > 1024
                or any(c in path_value for c in " ?#\r\n\t")
            ):
                problems.append(
                    FieldProblem(
                        f"{path}.path.{path_kind}",
                        "must be a URL path starting with '/' (no spaces, '?' or '#')",
                    )
                )
                path_kind = path_value = None
    headers: list[HeaderMatch] = []
    raw_headers = doc.get("headers")
    if raw_headers is not None:
        if not isinstance(raw_headers, Mapping):
            problems.append(
                FieldProblem(f"{path}.headers", "must map header names to {exact|prefix|regex: value}")
            )
        elif len(raw_headers) > MAX_HEADERS_PER_MATCH:
            problems.append(FieldProblem(f"{path}.headers", f"at most {MAX_HEADERS_PER_MATCH} headers"))
        else:
            for name, cond in raw_headers.items():
                hm = _header_match(name, cond, f"{path}.headers.{name}", problems)
                if hm is not None:
                    headers.append(hm)
    return RouteMatch(host=host, path_kind=path_kind, path=path_value, headers=tuple(headers))


def _header_match(name: object, cond: object, path: str, problems: list[FieldProblem]) -> HeaderMatch | None:
    if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
        problems.append(FieldProblem(path, "header names are lower-case tokens such as x-user"))
        return None
    if name == CALLER_HEADER:
        problems.append(
            FieldProblem(path, f"{CALLER_HEADER} is set by the router; match callers with access rules")
        )
        return None
    if (
        not isinstance(cond, Mapping)
        or len(cond) != 1
        or next(iter(cond)) not in ("exact", "prefix", "regex")
    ):
        problems.append(FieldProblem(path, "must be exactly one of {exact: v}, {prefix: v}, {regex: v}"))
        return None
    kind, value = next(iter(cond.items()))
    if not isinstance(value, str) or len(value) > 1024 or any(c in value for c in "\r\n\0"):
        problems.append(
            FieldProblem(f"{path}.{kind}", "must be a single-line string (at most 1024 characters)")
        )
        return None
    if kind == "regex":
        problem = regex_problem(value)
        if problem:
            problems.append(FieldProblem(f"{path}.regex", problem))
            return None
    return HeaderMatch(name=name, kind=str(kind), value=value)


def compile_header_regex(pattern: str) -> Any:
    """Compile with RE2 (linear-time matching, bounded memory): the engine Envoy uses too."""
    return re2.compile(pattern, options=_RE2_OPTIONS)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not an acceptable header regex (RE2 syntax, bounded size), or None."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"at most {MAX_REGEX_LENGTH} characters"
    try:
        compiled = compile_header_regex(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"not a valid RE2 regular expression: {detail}"
    if compiled.programsize > MAX_REGEX_PROGRAM:
        return f"too complex (program size {compiled.programsize} > {MAX_REGEX_PROGRAM})"
    return None


def _destinations(raw: object, path: str, problems: list[FieldProblem]) -> tuple[Destination, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        problems.append(FieldProblem(path, "must be a non-empty list of {release: stable|canary, weight}"))
        return ()
    out: list[Destination] = []
    seen: set[str] = set()
    ok = True
    for i, item in enumerate(raw):
        dpath = f"{path}.{i}"
        doc = _mapping(item, dpath, problems, ("release", "weight"))
        if doc is None:
            ok = False
            continue
        release = doc.get("release")
        if release not in TRACKS:
            problems.append(FieldProblem(f"{dpath}.release", f"must be one of: {', '.join(TRACKS)}"))
            ok = False
        elif release in seen:
            problems.append(FieldProblem(f"{dpath}.release", f"{release} is listed twice"))
            ok = False
        seen.add(str(release))
        weight = _int(doc, "weight", dpath, problems, 0, 100, 100 if len(raw) == 1 else None)
        if weight is None:
            if "weight" not in doc:
                problems.append(
                    FieldProblem(f"{dpath}.weight", "required when there are several destinations")
                )
            ok = False
            continue
        out.append(Destination(release=str(release), weight=weight))
    if ok and sum(d.weight for d in out) != 100:
        problems.append(
            FieldProblem(path, f"weights must sum to 100 (they sum to {sum(d.weight for d in out)})")
        )
    return tuple(out)


def _timeouts(raw: object, path: str, problems: list[FieldProblem]) -> Timeouts | None:
    doc = _mapping(raw, path, problems, ("perTry", "overall"))
    if doc is None:
        return None
    per_try = parse_duration(doc["perTry"], f"{path}.perTry", problems) if "perTry" in doc else None
    overall = parse_duration(doc["overall"], f"{path}.overall", problems) if "overall" in doc else None
    if per_try is not None and overall is not None and per_try > overall:
        problems.append(FieldProblem(f"{path}.perTry", "must not be longer than overall"))
    return Timeouts(per_try=per_try, overall=overall)


def _retries(raw: object, path: str, problems: list[FieldProblem]) -> Retries | None:
    doc = _mapping(raw, path, problems, ("attempts", "retryOn", "budget"))
    if doc is None:
        return None
    attempts = _int(doc, "attempts", path, problems, 0, MAX_RETRIES, None)
    if "attempts" not in doc:
        problems.append(
            FieldProblem(f"{path}.attempts", f"required: retries after the first try, 0-{MAX_RETRIES}")
        )
    on = doc.get("retryOn", list(DEFAULT_RETRY_ON))
    conditions: tuple[str, ...] = DEFAULT_RETRY_ON
    if not isinstance(on, list) or not on or any(c not in RETRY_CONDITIONS for c in on):
        problems.append(
            FieldProblem(f"{path}.retryOn", f"must be a non-empty list of: {', '.join(RETRY_CONDITIONS)}")
        )
    else:
        conditions = tuple(c for c in RETRY_CONDITIONS if c in on)
    budget = RetryBudget()
    bdoc = _mapping(doc.get("budget"), f"{path}.budget", problems, ("percent", "minPerSecond"))
    if bdoc is not None:
        pct = _number(bdoc, "percent", f"{path}.budget", problems, 0, 100, 20.0)
        per_s = _number(bdoc, "minPerSecond", f"{path}.budget", problems, 0, 10_000, 3.0)
        if pct is not None and per_s is not None:
            budget = RetryBudget(percent=pct, min_per_second=per_s)
    return Retries(attempts=attempts or 0, on=conditions, budget=budget)


def _pool(raw: object, path: str, problems: list[FieldProblem]) -> ConnectionPool | None:
    doc = _mapping(raw, path, problems, ("maxConnections", "maxPending", "maxRequestsPerConnection"))
    if doc is None:
        return None
    return ConnectionPool(
        max_connections=_int(doc, "maxConnections", path, problems, 1, 100_000, None),
        max_pending=_int(doc, "maxPending", path, problems, 0, 100_000, None),
        max_requests_per_connection=_int(doc, "maxRequestsPerConnection", path, problems, 1, 1_000_000, None),
    )


def _outlier(raw: object, path: str, problems: list[FieldProblem]) -> OutlierDetection | None:
    keys = (
        "consecutive5xx",
        "consecutiveGatewayErrors",
        "interval",
        "baseEjectionTime",
        "maxEjectionPercent",
    )
    doc = _mapping(raw, path, problems, keys)
    if doc is None:
        return None
    c5 = _int(doc, "consecutive5xx", path, problems, 0, 1000, 5)
    cgw = _int(doc, "consecutiveGatewayErrors", path, problems, 0, 1000, 0)
    interval = parse_duration(doc.get("interval", "10s"), f"{path}.interval", problems)
    base = parse_duration(doc.get("baseEjectionTime", "30s"), f"{path}.baseEjectionTime", problems)
    pct = _int(doc, "maxEjectionPercent", path, problems, 0, 100, 50)
    if c5 == 0 and cgw == 0:
        problems.append(FieldProblem(path, "consecutive5xx and consecutiveGatewayErrors cannot both be 0"))
    if c5 is None or cgw is None or interval is None or base is None or pct is None:
        return None
    return OutlierDetection(c5, cgw, interval, base, pct)


def _load_balancer(raw: object, path: str, problems: list[FieldProblem]) -> LoadBalancer | None:
    doc = _mapping(raw, path, problems, ("policy", "hashOn"))
    if doc is None:
        return None
    policy = doc.get("policy", "round-robin")
    if policy not in LB_POLICIES:
        problems.append(FieldProblem(f"{path}.policy", f"must be one of: {', '.join(LB_POLICIES)}"))
        return None
    hash_on = doc.get("hashOn")
    if policy != "consistent-hash":
        if hash_on is not None:
            problems.append(FieldProblem(f"{path}.hashOn", "only with policy: consistent-hash"))
        return LoadBalancer(policy=str(policy))
    rule = "required for consistent-hash: {header: NAME}, {cookie: NAME} or {source: true}"
    if not isinstance(hash_on, Mapping) or len(hash_on) != 1:
        problems.append(FieldProblem(f"{path}.hashOn", rule))
        return None
    kind, value = next(iter(hash_on.items()))
    if kind == "source" and value is True:
        return LoadBalancer(policy="consistent-hash", hash_on="source")
    if kind in ("header", "cookie") and isinstance(value, str) and _HEADER_NAME_RE.fullmatch(value.lower()):
        key = value.lower() if kind == "header" else value
        return LoadBalancer(policy="consistent-hash", hash_on=str(kind), hash_key=key)
    problems.append(FieldProblem(f"{path}.hashOn", rule))
    return None


def _bucket(
    raw: object, path: str, problems: list[FieldProblem], extra: tuple[str, ...] = ()
) -> tuple[RateLimit | None, Mapping[str, Any] | None]:
    doc = _mapping(raw, path, problems, ("rps", "burst", *extra))
    if doc is None:
        return None, None
    if "rps" not in doc:
        if not extra:
            problems.append(FieldProblem(f"{path}.rps", "required: requests per second"))
        return None, doc
    rps = _number(doc, "rps", path, problems, 0.001, MAX_RPS, None)
    burst = _int(doc, "burst", path, problems, 1, 10 * MAX_RPS, max(1, int(rps)) if rps else 1)
    if rps is None or burst is None:
        return None, doc
    return RateLimit(rps=rps, burst=burst), doc


def _rate_limits(raw: object, path: str, problems: list[FieldProblem]) -> RateLimits | None:
    overall, doc = _bucket(raw, path, problems, ("perCaller",))
    if doc is None:
        return None
    per_caller = None
    if doc.get("perCaller") is not None:
        per_caller, _ = _bucket(doc["perCaller"], f"{path}.perCaller", problems)
    if overall is None and per_caller is None and "rps" not in doc:
        problems.append(FieldProblem(path, "needs rps (and burst) and/or perCaller"))
    return RateLimits(overall=overall, per_caller=per_caller)


def parse_caller(value: object, path: str, problems: list[FieldProblem]) -> CallerRef | None:
    m = _CALLER_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        problems.append(
            FieldProblem(path, "must be an app name (same environment), project/env/app or project/env/*")
        )
        return None
    for part in ("project", "env", "app"):
        text = m.group(part)
        if text is not None and text != "*" and not DNS_LABEL_RE.fullmatch(text):
            problems.append(FieldProblem(path, f"{text!r} is not a DNS label"))
            return None
    return CallerRef(app=m.group("app"), project=m.group("project"), env=m.group("env"))


def _access(raw: object, path: str, problems: list[FieldProblem]) -> AccessPolicy | None:
    doc = _mapping(raw, path, problems, ("default", "allow", "deny", "external"))
    if doc is None:
        return None
    default = doc.get("default", "allow-environment")
    if default not in ACCESS_DEFAULTS:
        problems.append(FieldProblem(f"{path}.default", f"must be one of: {', '.join(ACCESS_DEFAULTS)}"))
    lists: dict[str, tuple[CallerRef, ...]] = {}
    for key in ("allow", "deny"):
        items = doc.get(key, [])
        if not isinstance(items, list) or len(items) > 200:
            problems.append(FieldProblem(f"{path}.{key}", "must be a list (at most 200) of callers"))
            lists[key] = ()
            continue
        refs = [parse_caller(v, f"{path}.{key}.{i}", problems) for i, v in enumerate(items)]
        lists[key] = tuple(r for r in refs if r is not None)
    external = doc.get("external", True)
    if not isinstance(external, bool):
        problems.append(FieldProblem(f"{path}.external", "must be true or false"))
        external = True
    return AccessPolicy(default=str(default), allow=lists["allow"], deny=lists["deny"], external=external)


_PROGRESSIVE_STRATEGIES = ("canary", "blue-green")
_ANALYSIS_KEYS = ("window", "maxErrorRate", "maxP99Ms", "query", "maxValue", "minRequests")


def parse_progressive(raw: Mapping[str, Any], path: str, problems: list[FieldProblem]) -> Progressive | None:
    """``rollout`` with ``strategy: canary|blue-green`` (other keys: steps, previewHost, analysis)."""
    strategy = raw.get("strategy")
    if strategy not in _PROGRESSIVE_STRATEGIES:
        return None
    before = len(problems)
    allowed = ("strategy", "steps", "previewHost", "analysis", "allowNoTraffic", "maxSurge", "maxUnavailable",
               "progressDeadlineSeconds")  # fmt: skip
    problems += _unknown(raw, allowed, path)
    steps: list[CanaryStep] = []
    raw_steps = raw.get("steps")
    if strategy == "canary":
        if not isinstance(raw_steps, list) or not raw_steps or len(raw_steps) > 20:
            problems.append(
                FieldProblem(f"{path}.steps", "required for canary: a list of 1-20 {weight, pause|analysis}")
            )
            raw_steps = []
        last = 0
        for i, item in enumerate(raw_steps):
            spath = f"{path}.steps.{i}"
            doc = _mapping(item, spath, problems, ("weight", "pause", "analysis"))
            if doc is None:
                if item is None:
                    problems.append(FieldProblem(spath, "must be a mapping {weight, pause|analysis}"))
                continue
            weight = _int(doc, "weight", spath, problems, 1, 100, None)
            if "weight" not in doc:
                problems.append(
                    FieldProblem(f"{spath}.weight", "required: 1-100 (percent of traffic to canary)")
                )
            elif weight is not None and weight < last:
                problems.append(
                    FieldProblem(f"{spath}.weight", f"must not be lower than the step before ({last})")
                )
            if "pause" in doc and "analysis" in doc:
                problems.append(FieldProblem(spath, "give a pause or an analysis, not both"))
            pause = parse_duration(doc["pause"], f"{spath}.pause", problems) if "pause" in doc else None
            analysis = _analysis(doc.get("analysis"), f"{spath}.analysis", problems)
            if weight is not None:
                last = weight
                steps.append(CanaryStep(weight=weight, pause=pause, analysis=analysis))
    elif raw_steps is not None:
        problems.append(FieldProblem(f"{path}.steps", "only for strategy: canary"))
    preview = raw.get("previewHost")
    if preview is not None and not is_dns_name(preview):
        problems.append(FieldProblem(f"{path}.previewHost", "must be a lower-case DNS name"))
    analysis = (
        _analysis(raw.get("analysis"), f"{path}.analysis", problems) if strategy == "blue-green" else None
    )
    if strategy == "canary" and raw.get("analysis") is not None:
        problems.append(FieldProblem(f"{path}.analysis", "for canary, give the analysis on each step"))
    allow_no_traffic = raw.get("allowNoTraffic", False)
    if not isinstance(allow_no_traffic, bool):
        problems.append(FieldProblem(f"{path}.allowNoTraffic", "must be true or false"))
    if len(problems) > before:
        return None
    return Progressive(
        strategy=str(strategy),
        steps=tuple(steps),
        preview_host=preview,
        analysis=analysis,
        allow_no_traffic=allow_no_traffic is True,
    )


def _analysis(raw: object, path: str, problems: list[FieldProblem]) -> Analysis | None:
    doc = _mapping(raw, path, problems, _ANALYSIS_KEYS)
    if doc is None:
        return None
    window = parse_duration(doc.get("window", "1m"), f"{path}.window", problems)
    err = _number(
        doc,
        "maxErrorRate",
        path,
        problems,
        0,
        1,
        0.01 if "maxP99Ms" not in doc and "query" not in doc else None,
    )
    p99 = _number(doc, "maxP99Ms", path, problems, 0, 3_600_000, None)
    query = doc.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip() or len(query) > 4000):
        problems.append(
            FieldProblem(f"{path}.query", "must be a PromQL expression (at most 4000 characters)")
        )
        query = None
    max_value = _number(doc, "maxValue", path, problems, -1e15, 1e15, None)
    if "query" in doc and "maxValue" not in doc:
        problems.append(
            FieldProblem(
                f"{path}.maxValue", "required with query: the step fails when the query's value is above it"
            )
        )
    elif "maxValue" in doc and "query" not in doc:
        problems.append(FieldProblem(f"{path}.maxValue", "only with query"))
    min_req = _int(doc, "minRequests", path, problems, 0, 1_000_000, 20)
    return Analysis(
        window=window or 60.0,
        max_error_rate=err,
        max_p99_ms=p99,
        query=query,
        min_requests=min_req or 0,
        max_value=max_value,
    )


# --- canonical form ----------------------------------------------------------------------------------


def _timeouts_to_dict(t: Timeouts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.per_try is not None:
        out["perTry"] = format_duration(t.per_try)
    if t.overall is not None:
        out["overall"] = format_duration(t.overall)
    return out


def _retries_to_dict(r: Retries) -> dict[str, Any]:
    return {
        "attempts": r.attempts,
        "retryOn": list(r.on),
        "budget": {"percent": r.budget.percent, "minPerSecond": r.budget.min_per_second},
    }


def _rate_to_dict(r: RateLimits) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.overall:
        out = {"rps": r.overall.rps, "burst": r.overall.burst}
    if r.per_caller:
        out["perCaller"] = {"rps": r.per_caller.rps, "burst": r.per_caller.burst}
    return out


def _route_to_dict(r: TrafficRoute) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name}
    match: dict[str, Any] = {}
    if r.match.host:
        match["host"] = r.match.host
    if r.match.path_kind:
        match["path"] = {r.match.path_kind: r.match.path}
    if r.match.headers:
        match["headers"] = {h.name: {h.kind: h.value} for h in r.match.headers}
    if match:
        out["match"] = match
    if r.to:
        out["to"] = [{"release": d.release, "weight": d.weight} for d in r.to]
    if r.timeouts:
        out["timeouts"] = _timeouts_to_dict(r.timeouts)
    if r.retries:
        out["retries"] = _retries_to_dict(r.retries)
    if r.rate_limit:
        out["rateLimit"] = _rate_to_dict(r.rate_limit)
    return out


def _policy_to_dict(p: TrafficPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.routes:
        out["routes"] = [_route_to_dict(r) for r in p.routes]
    if p.timeouts:
        out["timeouts"] = _timeouts_to_dict(p.timeouts)
    if p.retries:
        out["retries"] = _retries_to_dict(p.retries)
    if p.connection_pool:
        cp = p.connection_pool
        out["connectionPool"] = {
            k: v
            for k, v in (
                ("maxConnections", cp.max_connections),
                ("maxPending", cp.max_pending),
                ("maxRequestsPerConnection", cp.max_requests_per_connection),
            )
            if v is not None
        }
    if p.outlier_detection:
        od = p.outlier_detection
        out["outlierDetection"] = {
            "consecutive5xx": od.consecutive_5xx,
            "consecutiveGatewayErrors": od.consecutive_gateway_errors,
            "interval": format_duration(od.interval),
            "baseEjectionTime": format_duration(od.base_ejection_time),
            "maxEjectionPercent": od.max_ejection_percent,
        }
    if p.load_balancer != LoadBalancer():
        lb: dict[str, Any] = {"policy": p.load_balancer.policy}
        if p.load_balancer.hash_on == "source":
            lb["hashOn"] = {"source": True}
        elif p.load_balancer.hash_on:
            lb["hashOn"] = {p.load_balancer.hash_on: p.load_balancer.hash_key}
        out["loadBalancer"] = lb
    if p.rate_limit:
        out["rateLimit"] = _rate_to_dict(p.rate_limit)
    if p.access != AccessPolicy():
        out["access"] = {
            "default": p.access.default,
            "allow": [str(c) for c in p.access.allow],
            "deny": [str(c) for c in p.access.deny],
            "external": p.access.external,
        }
    if p.mtls:
        out["mtls"] = True
    return out


def _analysis_to_dict(a: Analysis) -> dict[str, Any]:
    out: dict[str, Any] = {"window": format_duration(a.window), "minRequests": a.min_requests}
    if a.max_error_rate is not None:
        out["maxErrorRate"] = a.max_error_rate
    if a.max_p99_ms is not None:
        out["maxP99Ms"] = a.max_p99_ms
    if a.query:
        out["query"] = a.query
    if a.max_value is not None:
        out["maxValue"] = a.max_value
    return out


def _step_to_dict(s: CanaryStep) -> dict[str, Any]:
    out: dict[str, Any] = {"weight": s.weight}
    if s.pause is not None:
        out["pause"] = format_duration(s.pause)
    if s.analysis is not None:
        out["analysis"] = _analysis_to_dict(s.analysis)
    return out
