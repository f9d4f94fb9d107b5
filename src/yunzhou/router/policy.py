"""Traffic policy as the router enforces it: compiled once per snapshot, with state that outlives snapshots.

A snapshot's ``policies`` map an app address to ``{"traffic": <TrafficPolicy document>, "split":
{"stable": W, "canary": 100-W}, "preview_hosts": [...]}``. The traffic document is parsed with the domain
parser (the same validation as the settings), so the router only ever holds typed objects built from data.
Header regexes are compiled with RE2: linear time whatever the input.

State that must survive a new snapshot (token buckets, retry budget, outlier ejections, pool queues) lives
in ``PolicyState`` objects kept by the router per app and reused while the app's policy is unchanged.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yunzhou.domain.errors import FieldProblem
from yunzhou.domain.traffic import (
    CANARY_HEADER,
    AccessPolicy,
    RateLimit,
    RateLimits,
    Retries,
    Timeouts,
    TrafficPolicy,
    TrafficRoute,
    collect_traffic,
    compile_header_regex,
)

if TYPE_CHECKING:
    from yunzhou.router.config import Backend
    from yunzhou.router.exchange import Exchange

BUDGET_WINDOW_S = 10
MAX_CALLER_BUCKETS = 10_000  # per app; the oldest are dropped beyond it (callers may be client addresses)
DEFAULT_ACCESS = AccessPolicy()


class TokenBucket:
    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.rps
        self.burst = float(limit.burst)
        self.tokens = float(limit.burst)
        self.last = now

    def take(self, now: float) -> float:
        """0 when a token was taken; otherwise the seconds until one is available."""
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.last = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


class Limiter:
    """An overall bucket and one bucket per caller (LRU-bounded), for one route or the whole app."""

    def __init__(self, limits: RateLimits, now: float) -> None:
        self.limits = limits
        self.overall = TokenBucket(limits.overall, now) if limits.overall else None
        self.per_caller: dict[str, TokenBucket] = {}

    def take(self, caller_key: str, now: float) -> tuple[float, str]:
        """(seconds to wait, which limit) — (0, "") when admitted."""
        if self.limits.per_caller is not None:
            bucket = self.per_caller.get(caller_key)
            if bucket is None:
                if len(self.per_caller) >= MAX_CALLER_BUCKETS:
                    del self.per_caller[next(iter(self.per_caller))]
                bucket = self.per_caller[caller_key] = TokenBucket(self.limits.per_caller, now)
            wait = bucket.take(now)
            if wait:
                return wait, "perCaller"
        if self.overall is not None:
            wait = self.overall.take(now)
            if wait:
                return wait, "rps"
        return 0.0, ""


class RetryBudget:
    """Retries over the last 10 s may be at most ``percent`` of requests plus ``min_per_second`` × 10."""

    def __init__(self) -> None:
        self.requests = [0] * BUDGET_WINDOW_S
        self.retries = [0] * BUDGET_WINDOW_S
        self.second = 0

    def _roll(self, now: float) -> int:
        second = int(now)
        if second != self.second:
            if second - self.second >= BUDGET_WINDOW_S:
                self.requests = [0] * BUDGET_WINDOW_S
                self.retries = [0] * BUDGET_WINDOW_S
            else:
                for s in range(self.second + 1, second + 1):
                    self.requests[s % BUDGET_WINDOW_S] = 0
                    self.retries[s % BUDGET_WINDOW_S] = 0
            self.second = second
        return second % BUDGET_WINDOW_S

    def note_request(self, now: float) -> None:
        second = int(now)
        self.requests[second % BUDGET_WINDOW_S if second == self.second else self._roll(now)] += 1

    def try_retry(self, percent: float, min_per_second: float, now: float) -> bool:
        slot = self._roll(now)
        allowed = sum(self.requests) * percent / 100.0 + min_per_second * BUDGET_WINDOW_S
        if sum(self.retries) + 1 > allowed:
            return False
        self.retries[slot] += 1
        return True


@dataclass
class BackendHealth:
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    ejections: int = 0
    ejected_until: float = 0.0


@dataclass
class PolicyState:
    """Per-app state kept across snapshots while the policy document stays the same."""

    doc: Any
    limiter: Limiter | None = None
    route_limiters: dict[str, Limiter] = field(default_factory=dict)
    budget: RetryBudget = field(default_factory=RetryBudget)
    health: dict[str, BackendHealth] = field(default_factory=dict)
    rr: dict[str, int] = field(default_factory=dict)  # round-robin position per track
    active: int = 0  # requests holding a connection-pool slot
    pending: deque[Exchange] = field(default_factory=deque)


@dataclass(frozen=True)
class _HeaderTest:
    name: bytes
    kind: str
    value: str
    regex: Any

    def ok(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.kind == "exact":
            return actual == self.value
        if self.kind == "prefix":
            return actual.startswith(self.value)
        return self.regex.search(actual) is not None


class CompiledRoute:
    """A traffic route's match, flattened for the request path, with its decisions made in advance."""

    __slots__ = ("decisions", "exact", "headers", "host", "path", "prefix", "rule", "to")

    def __init__(self, rule: TrafficRoute, headers: tuple[_HeaderTest, ...]) -> None:
        m = rule.match
        self.rule = rule
        self.headers = headers
        self.host = m.host
        self.exact = m.path_kind == "exact"
        self.path = m.path
        # segment-wise prefix, "/" stripped at the end; None when every path matches
        self.prefix = (
            m.path.rstrip("/") if m.path_kind == "prefix" and m.path is not None and m.path != "/" else None
        )
        self.to = tuple((d.release, d.weight) for d in rule.to)
        self.decisions: dict[str, Decision] = {}  # by track, when no hash key varies per request

    def matches(self, host: str, path: str, headers: Mapping[bytes, str]) -> bool:
        if self.host is not None and self.host != host:
            return False
        if self.exact and path != self.path:
            return False
        prefix = self.prefix
        if prefix is not None and not (
            path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")
        ):
            return False
        for test in self.headers:  # noqa: SIM110 -- a plain loop: no generator per request
            if not test.ok(headers.get(test.name)):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one request before any backend is tried (shared, never changed)."""

    route: str  # traffic route name, or "" (the app's defaults)
    track: str
    timeouts: Timeouts | None
    retries: Retries | None
    hash_key: str | None
    # flattened from the above for the request path
    attempts: int = field(init=False)  # retries allowed (0: none)
    per_try: float | None = field(init=False)
    overall: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attempts", self.retries.attempts if self.retries is not None else 0)
        object.__setattr__(self, "per_try", self.timeouts.per_try if self.timeouts is not None else None)
        object.__setattr__(self, "overall", self.timeouts.overall if self.timeouts is not None else None)


class AppPolicy:
    """One app's compiled policy. Built per snapshot; ``state`` is shared with earlier snapshots."""

    def __init__(
        self,
        app: str,
        traffic: TrafficPolicy,
        split: tuple[tuple[str, int], ...],
        preview_hosts: frozenset[str],
        state: PolicyState,
        now: float,
    ) -> None:
        self.app = app
        self.project, self.env, _ = app.split("/")
        self.traffic = traffic
        self.split = split
        self.preview_hosts = preview_hosts
        self.state = state
        self.routes = tuple(
            CompiledRoute(
                r,
                tuple(
                    _HeaderTest(
                        h.name.encode("latin-1"),
                        h.kind,
                        h.value,
                        compile_header_regex(h.value) if h.kind == "regex" else None,
                    )
                    for h in r.match.headers
                ),
            )
            for r in traffic.routes
        )
        # Headers the policy reads: only these are collected from a request.
        wanted = {h.name for r in self.routes for h in r.headers} | {CANARY_HEADER.encode()}
        lb = traffic.load_balancer
        if lb.hash_on == "header" and lb.hash_key:
            wanted.add(lb.hash_key.encode("latin-1"))
        if lb.hash_on == "cookie":
            wanted.add(b"cookie")
        self.wanted_headers = frozenset(wanted)
        if state.limiter is None and traffic.rate_limit is not None:
            state.limiter = Limiter(traffic.rate_limit, now)
        for r in traffic.routes:
            if r.rate_limit is not None and r.name not in state.route_limiters:
                state.route_limiters[r.name] = Limiter(r.rate_limit, now)
        pool = traffic.connection_pool
        self.max_active = pool.max_connections if pool and pool.max_connections else None
        self.max_pending = pool.max_pending if pool and pool.max_pending is not None else 1_000_000
        self.max_requests_per_connection = pool.max_requests_per_connection if pool else None
        self.outlier_detection = traffic.outlier_detection
        # Per request only the track (and a hash key) varies, so decisions are made once per route and track.
        self._hashing = lb.policy == "consistent-hash"
        self._default_decisions: dict[str, Decision] = {}  # decisions of requests no route matched
        self._app_limit = (state.limiter, "rateLimit") if state.limiter is not None else None
        self._route_limits = {
            r.name: (state.route_limiters[r.name], f"routes.{r.name}.rateLimit")
            for r in traffic.routes
            if r.rate_limit is not None
        }
        self._access: dict[tuple[str, str, str] | None, tuple[bool, str]] = {}

    def connection_spent(self, served: int) -> bool:
        """True when a backend connection has served maxRequestsPerConnection (this one included)."""
        limit = self.max_requests_per_connection
        return limit is not None and served + 1 >= limit

    # --- admission ---------------------------------------------------------------------------
    def access(self, caller: tuple[str, str, str] | None) -> tuple[bool, str]:
        """The access decision for a caller, remembered: callers are the snapshot's apps (or None)."""
        known = self._access.get(caller)
        if known is None:
            known = self._access[caller] = self.traffic.access.decide(
                caller, own_project=self.project, own_env=self.env
            )
        return known

    def decide(self, host: str, path: str, headers: Mapping[bytes, str], peer: str) -> Decision:
        for compiled in self.routes:
            if compiled.matches(host, path, headers):
                to = compiled.to
                if not to:
                    track = self._default_track(host, headers)
                elif len(to) == 1:
                    track = to[0][0]
                else:
                    track = _weighted_pairs(to)
                rule: TrafficRoute | None = compiled.rule
                made = compiled.decisions
                break
        else:
            track = self._default_track(host, headers)
            rule = None
            made = self._default_decisions
        if self._hashing:
            return self._decision(rule, track, self._hash_key(headers, peer))
        decision = made.get(track)
        if decision is None:
            decision = made[track] = self._decision(rule, track, None)
        return decision

    def _decision(self, rule: TrafficRoute | None, track: str, hash_key: str | None) -> Decision:
        traffic = self.traffic
        if rule is None:
            return Decision("", track, traffic.timeouts, traffic.retries, hash_key)
        return Decision(
            rule.name, track, rule.timeouts or traffic.timeouts, rule.retries or traffic.retries, hash_key
        )

    def _default_track(self, host: str, headers: Mapping[bytes, str]) -> str:
        if host in self.preview_hosts:
            return "canary"
        pin = headers.get(b"x-canary")
        if pin == "always":
            return "canary"
        if pin == "never":
            return "stable"
        return _weighted_pairs(self.split)

    def _hash_key(self, headers: Mapping[bytes, str], peer: str) -> str | None:
        lb = self.traffic.load_balancer
        if lb.policy != "consistent-hash":
            return None
        if lb.hash_on == "source":
            return peer
        if lb.hash_on == "header" and lb.hash_key:
            return headers.get(lb.hash_key.encode("latin-1"))
        cookies = headers.get(b"cookie")
        if cookies and lb.hash_key:
            for part in cookies.split(";"):
                name, _, value = part.strip().partition("=")
                if name == lb.hash_key:
                    return value
        return None

    def rate_limit(self, route: str, caller_key: str, now: float) -> tuple[float, str]:
        """(seconds to wait, limit field path), (0, "") when admitted; a route's limit replaces the app's."""
        limit = self._route_limits.get(route) or self._app_limit
        if limit is None:
            return 0.0, ""
        limiter, path = limit
        wait, which = limiter.take(caller_key, now)
        if not wait:
            return 0.0, ""
        return wait, f"{path}.{which}" if which == "perCaller" else path

    # --- backend choice ------------------------------------------------------------------------
    def order(
        self, backends: tuple[Backend, ...], decision: Decision, now: float, load: Mapping[str, int]
    ) -> list[Backend]:
        """Backends of the chosen track (the other track when it has none), ejected ones left out."""
        chosen = [b for b in backends if b.track == decision.track]
        if not chosen:
            chosen = list(backends)
        if self.state.health:
            chosen = self._not_ejected(chosen, now) or chosen  # all ejected: panic, use them all (as Envoy)
        if len(chosen) <= 1:
            return chosen
        lb = self.traffic.load_balancer
        if lb.policy == "least-requests":  # power of two choices
            n = len(chosen)
            i = int(random.random() * n)  # noqa: S311 -- load balancing, not security
            j = int(random.random() * (n - 1))  # noqa: S311
            a, b = chosen[i], chosen[j + 1 if j >= i else j]
            first = a if load.get(a.id, 0) <= load.get(b.id, 0) else b
            return [first, *(x for x in chosen if x is not first)]
        if lb.policy == "consistent-hash" and decision.hash_key is not None:
            key = decision.hash_key.encode("utf-8", "replace")
            return sorted(chosen, key=lambda x: zlib.crc32(key + b"|" + x.id.encode()), reverse=True)
        pos = self.state.rr.get(decision.track, 0) % len(chosen)
        self.state.rr[decision.track] = pos + 1
        return [*chosen[pos:], *chosen[:pos]]

    def _not_ejected(self, backends: list[Backend], now: float) -> list[Backend]:
        health = self.state.health
        out = []
        for b in backends:
            h = health.get(b.id)
            if h is not None and h.ejected_until > now:
                continue
            out.append(b)
        return out

    # --- outcomes --------------------------------------------------------------------------------
    def record(
        self, backend: Backend, status: int, gateway_error: bool, now: float, backends: tuple[Backend, ...]
    ) -> bool:
        """Feed one attempt's outcome to outlier detection; True when it ejected the backend."""
        od = self.traffic.outlier_detection
        if od is None:
            return False
        health = self.state.health
        h = health.get(backend.id)
        if status < 500 and not gateway_error:
            if h is not None:
                h.consecutive_5xx = h.consecutive_gateway = 0
            return False
        if h is None:
            h = health[backend.id] = BackendHealth()
        if h.ejected_until > now:
            return False
        if status >= 500:
            h.consecutive_5xx += 1
        if gateway_error:
            h.consecutive_gateway += 1
        tripped = (od.consecutive_5xx and h.consecutive_5xx >= od.consecutive_5xx) or (
            od.consecutive_gateway_errors and h.consecutive_gateway >= od.consecutive_gateway_errors
        )
        if not tripped:
            return False
        ejected = sum(1 for b in backends if b.id in health and health[b.id].ejected_until > now)
        if ejected + 1 > math.floor(len(backends) * od.max_ejection_percent / 100):
            return False  # never above maxEjectionPercent
        h.ejections += 1
        h.ejected_until = now + od.base_ejection_time * h.ejections
        h.consecutive_5xx = h.consecutive_gateway = 0
        return True

    def ejected_count(self, now: float) -> int:
        return sum(1 for h in self.state.health.values() if h.ejected_until > now)


def _weighted_pairs(pairs: tuple[tuple[str, int], ...]) -> str:
    if len(pairs) == 1:
        return pairs[0][0]
    roll = random.random() * 100  # noqa: S311 -- traffic split, not security
    for track, weight in pairs:
        if roll < weight:
            return track
        roll -= weight
    return pairs[-1][0]


# --- snapshot parsing ------------------------------------------------------------------------------

_POLICY_KEYS = ("traffic", "split", "preview_hosts")


@dataclass(frozen=True)
class PolicySpec:
    """The validated ``policies.<app>`` entry of a snapshot (data; compiled by ``AppPolicy``)."""

    traffic: TrafficPolicy
    split: tuple[tuple[str, int], ...]
    preview_hosts: frozenset[str]
    doc: Any

    def to_json(self) -> Any:
        return self.doc


def parse_policy(app: str, doc: object, path: str, problems: list[FieldProblem]) -> PolicySpec | None:
    if not isinstance(doc, dict):
        problems.append(FieldProblem(path, "must be an object with traffic, split, preview_hosts"))
        return None
    for key in sorted(set(doc) - set(_POLICY_KEYS)):
        problems.append(
            FieldProblem(f"{path}.{key}", f"unknown field; allowed fields are {', '.join(_POLICY_KEYS)}")
        )
    before = len(problems)
    traffic = collect_traffic(doc.get("traffic"), f"{path}.traffic", problems)
    raw_split = doc.get("split", {"stable": 100})
    split: list[tuple[str, int]] = []
    if not isinstance(raw_split, dict) or not raw_split:
        problems.append(FieldProblem(f"{path}.split", "must map stable/canary to weights summing to 100"))
    else:
        for track in ("stable", "canary"):
            w = raw_split.get(track, 0)
            if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
                problems.append(FieldProblem(f"{path}.split.{track}", "must be an integer 0-100"))
            elif w:
                split.append((track, w))
        if set(raw_split) - {"stable", "canary"}:
            problems.append(FieldProblem(f"{path}.split", "only stable and canary"))
        elif sum(w for _, w in split) != 100:
            problems.append(FieldProblem(f"{path}.split", "weights must sum to 100"))
    hosts = doc.get("preview_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        problems.append(FieldProblem(f"{path}.preview_hosts", "must be a list of host names"))
        hosts = []
    if len(problems) > before:
        return None
    return PolicySpec(traffic, tuple(split), frozenset(h.lower() for h in hosts), doc)
