"""The router's configuration: a versioned snapshot, its validation, and the routing table built from it.

A snapshot arrives as JSON from the control plane (``PUT /config``) or a file (``--config``). It is parsed
into frozen dataclasses here. A problem with the document as a whole raises a ``UserError`` whose
``problems`` name the field, so the admin API can answer 422 and keep the active snapshot; a problem with
one route (invalid, its app's policy invalid, or its host and path already routed) drops only that route,
with the reason in ``Snapshot.dropped``: one bad route never keeps the others from being applied.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.router.hold import Activation, parse_activation
from yunzhou.router.policy import AppPolicy, PolicySpec, parse_policy
from yunzhou.router.tls import CertificateSpec, parse_certificates

_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_APP_PART_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_BACKEND_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SNAPSHOT_KEYS = frozenset({"version", "routes", "policies", "callers", "certificates"})
_ROUTE_KEYS = frozenset(
    {"host", "path_prefix", "app", "backends", "activation", "redirect_https", "hsts_max_age"}
)
_BACKEND_KEYS = frozenset({"id", "address", "release", "track"})
_TOKEN_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_ROUTES = 10_000
MAX_BACKENDS_PER_ROUTE = 1_000


@dataclass(frozen=True, slots=True)
class Backend:
    """One ready instance of an app: where to connect and which release it runs."""

    id: str
    address: str
    host: str
    port: int
    release: int
    track: str = "stable"  # stable | canary: which side of a traffic split it serves

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "address": self.address, "release": self.release}
        if self.track != "stable":
            doc["track"] = self.track
        return doc


@dataclass(slots=True)
class Route:
    """Requests for ``host`` whose path starts (segment-wise) with ``path_prefix`` go to ``app``."""

    host: str
    path_prefix: str
    app: str
    backends: tuple[Backend, ...]
    policy: AppPolicy | None = field(default=None, compare=False)  # set when the table is built
    activation: Activation | None = None  # scale to zero: hold requests while there is no backend
    redirect_https: bool = False  # plain-HTTP requests get 308 to https:// (when the router listens for TLS)
    hsts_max_age: int | None = None  # Strict-Transport-Security on HTTPS answers, when set
    hsts: bytes = field(default=b"", compare=False)  # that header's value, built once
    # Round-robin position; lives with the snapshot, so a new snapshot starts from its first backend.
    next_index: int = field(default=0, compare=False)

    def pick_order(self) -> list[Backend]:
        """Backends in the order to try them: round-robin start, then the rest as fall-through."""
        count = len(self.backends)
        if count <= 1:
            return list(self.backends)
        start = self.next_index % count
        self.next_index = start + 1
        return [*self.backends[start:], *self.backends[:start]]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "host": self.host,
            "path_prefix": self.path_prefix,
            "app": self.app,
            "backends": [b.to_json() for b in self.backends],
        }
        if self.activation is not None:
            doc["activation"] = self.activation.to_json()
        if self.redirect_https:
            doc["redirect_https"] = True
        if self.hsts_max_age is not None:
            doc["hsts_max_age"] = self.hsts_max_age
        return doc


@dataclass(frozen=True, slots=True)
class DroppedRoute:
    """A route of a snapshot that was left out, and why (shown by ``GET /status`` and logged)."""

    index: int  # its position in the snapshot's ``routes``
    host: object
    path_prefix: object
    app: object
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "host": self.host,
            "path_prefix": self.path_prefix,
            "app": self.app,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    routes: tuple[Route, ...]
    policies: dict[str, PolicySpec] = field(default_factory=dict)  # app → its traffic policy
    callers: dict[str, str] = field(default_factory=dict)  # sha256(caller token) hex → app address
    certificates: dict[str, CertificateSpec] = field(default_factory=dict)  # SNI name → files (router/tls.py)
    # routes of the document that were not applied; not part of to_json (the active config)
    dropped: tuple[DroppedRoute, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": self.version, "routes": [r.to_json() for r in self.routes]}
        if self.policies:
            doc["policies"] = {app: p.to_json() for app, p in sorted(self.policies.items())}
        if self.callers:
            doc["callers"] = dict(sorted(self.callers.items()))
        if self.certificates:
            doc["certificates"] = {name: c.to_json() for name, c in sorted(self.certificates.items())}
        return doc

    def backend_addresses(self) -> set[tuple[str, int]]:
        return {(b.host, b.port) for r in self.routes for b in r.backends}


EMPTY_SNAPSHOT = Snapshot(version=0, routes=())


class _Problems:
    """Collects every problem in a document so one 422 names them all."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldProblem(path, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
        raise UserError(f"invalid config snapshot: {first}{more}", problems=list(self.items))


def _non_negative_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _unknown_keys(doc: dict[str, Any], allowed: frozenset[str], path: str, problems: _Problems) -> None:
    for key in sorted(set(doc) - allowed):
        where = f"{path}.{key}" if path else str(key)
        problems.add(where, f"unknown field; allowed fields are {', '.join(sorted(allowed))}")


def normalize_host(value: str) -> str:
    """Lower-case a host name and drop a trailing dot, as matching does for the Host header."""
    return value.lower().rstrip(".")


def _check_host(value: object, path: str, problems: _Problems) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(path, "must be a non-empty host name such as 'orders.dev.shop.localhost'")
        return None
    host = normalize_host(value)
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        problems.add(path, f"{value!r} is not a host name (dot-separated labels of a-z, 0-9 and '-')")
        return None
    return host


def _check_path_prefix(value: object, path: str, problems: _Problems) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        problems.add(path, "must be a string starting with '/'")
        return None
    if any(ch in value for ch in "?# \t\r\n") or len(value) > 2048:
        problems.add(path, f"{value!r} must be a plain path without query, fragment or whitespace")
        return None
    return value


def _check_app(value: object, path: str, problems: _Problems) -> str | None:
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 3 or not all(_APP_PART_RE.match(p) for p in parts):
        problems.add(path, f"{value!r} is not an app address PROJECT/ENV/APP of DNS labels")
        return None
    assert isinstance(value, str)
    return value


def parse_address(value: object) -> tuple[str, int] | None:
    """``'127.0.0.1:41001'`` or ``'[::1]:41001'`` → (ip, port); None when it is not such an address."""
    if not isinstance(value, str):
        return None
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        return None
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version != version or not 0 < port < 65536:
        return None
    return str(ip), port


def _check_backend(doc: object, path: str, problems: _Problems) -> Backend | None:
    if not isinstance(doc, dict):
        problems.add(path, "must be an object with id, address and release")
        return None
    _unknown_keys(doc, _BACKEND_KEYS, path, problems)
    ok = True
    backend_id = doc.get("id")
    if not isinstance(backend_id, str) or not _BACKEND_ID_RE.match(backend_id):
        problems.add(f"{path}.id", "must be a non-empty string of letters, digits and '._:-' (max 128)")
        ok = False
    address = doc.get("address")
    parsed = parse_address(address)
    if parsed is None:
        problems.add(f"{path}.address", f"{address!r} is not IP:PORT (e.g. '127.0.0.1:41001' or '[::1]:80')")
        ok = False
    release = _non_negative_int(doc.get("release"))
    if release is None:
        problems.add(f"{path}.release", "must be an integer >= 0")
        ok = False
    track = doc.get("track", "stable")
    if track not in ("stable", "canary"):
        problems.add(f"{path}.track", "must be stable or canary")
        ok = False
    if not ok or parsed is None or release is None:
        return None
    assert isinstance(backend_id, str)
    assert isinstance(address, str)
    return Backend(
        id=backend_id, address=address, host=parsed[0], port=parsed[1], release=release, track=str(track)
    )


def _check_route(doc: object, path: str, problems: _Problems) -> Route | None:
    if not isinstance(doc, dict):
        problems.add(path, "must be an object with host, path_prefix, app and backends")
        return None
    _unknown_keys(doc, _ROUTE_KEYS, path, problems)
    host = _check_host(doc.get("host"), f"{path}.host", problems)
    prefix = _check_path_prefix(doc.get("path_prefix", "/"), f"{path}.path_prefix", problems)
    app = _check_app(doc.get("app"), f"{path}.app", problems)
    raw_backends = doc.get("backends")
    backends: list[Backend] = []
    if not isinstance(raw_backends, list):
        problems.add(f"{path}.backends", "must be a list (empty when the app has no ready instances)")
    elif len(raw_backends) > MAX_BACKENDS_PER_ROUTE:
        problems.add(f"{path}.backends", f"at most {MAX_BACKENDS_PER_ROUTE} backends per route")
    else:
        seen: set[str] = set()
        for i, raw in enumerate(raw_backends):
            backend = _check_backend(raw, f"{path}.backends[{i}]", problems)
            if backend is None:
                continue
            if backend.id in seen:
                problems.add(f"{path}.backends[{i}].id", f"duplicate backend id {backend.id!r}")
            seen.add(backend.id)
            backends.append(backend)
    activation = None
    if "activation" in doc:
        found: list[FieldProblem] = []
        activation = parse_activation(doc["activation"], f"{path}.activation", found)
        problems.items.extend(found)
    redirect_https = doc.get("redirect_https", False)
    if not isinstance(redirect_https, bool):
        problems.add(f"{path}.redirect_https", "must be true or false")
    hsts_raw = doc.get("hsts_max_age")
    hsts_max_age = None if hsts_raw is None else _non_negative_int(hsts_raw)
    if hsts_raw is not None and hsts_max_age is None:
        problems.add(f"{path}.hsts_max_age", "must be an integer >= 0 (seconds; 0 tells browsers to forget)")
    if host is None or prefix is None or app is None:
        return None
    return Route(
        host=host,
        path_prefix=prefix,
        app=app,
        backends=tuple(backends),
        activation=activation,
        redirect_https=bool(redirect_https),
        hsts_max_age=hsts_max_age,
        hsts=b"" if hsts_max_age is None else b"max-age=%d" % hsts_max_age,
    )


def parse_snapshot(doc: object, active: Snapshot | None = None) -> Snapshot:
    """Validate a decoded JSON snapshot.

    Raises ``UserError`` naming every bad field of the document as a whole (version, the routes list,
    callers, unknown keys). Routes that are invalid, whose app's policy is invalid, or whose host and
    path another route has are dropped (``Snapshot.dropped``, with the reason). Of two routes for one
    host and path, the one ``active`` already routes to the same app keeps it, else the first listed:
    a newcomer cannot take a host from the app that serves it.
    """
    problems = _Problems()
    if not isinstance(doc, dict):
        problems.add("", "the snapshot must be a JSON object with 'version' and 'routes'")
        problems.raise_if_any()
    assert isinstance(doc, dict)
    _unknown_keys(doc, _SNAPSHOT_KEYS, "", problems)
    version = _non_negative_int(doc.get("version"))
    if version is None:
        problems.add("version", "must be an integer >= 0")
    raw_routes = doc.get("routes")
    if not isinstance(raw_routes, list):
        problems.add("routes", "must be a list of routes")
    elif len(raw_routes) > MAX_ROUTES:
        problems.add("routes", f"at most {MAX_ROUTES} routes")
    policies, bad_policies = _check_policies(doc.get("policies", {}), problems)
    callers = _check_callers(doc.get("callers", {}), problems)
    certificates = parse_certificates(doc.get("certificates", {}), problems.items)
    problems.raise_if_any()
    assert isinstance(version, int)
    assert isinstance(raw_routes, list)
    dropped: list[DroppedRoute] = []
    candidates: list[tuple[int, Route]] = []
    for i, raw in enumerate(raw_routes):
        found = _Problems()
        route = _check_route(raw, f"routes[{i}]", found)
        if route is not None and route.app in bad_policies:
            found.add(
                f"policies.{route.app}", f"invalid, so the app is not routed: {bad_policies[route.app]}"
            )
        if route is None or found.items:
            fields = raw if isinstance(raw, dict) else {}
            reason = "; ".join(str(p) for p in found.items)
            dropped.append(
                DroppedRoute(i, fields.get("host"), fields.get("path_prefix", "/"), fields.get("app"), reason)
            )
            continue
        candidates.append((i, route))
    routes = _one_route_per_key(candidates, active, dropped)
    dropped.sort(key=lambda d: d.index)
    return Snapshot(
        version=version,
        routes=tuple(routes),
        policies=policies,
        callers=callers,
        certificates=certificates,
        dropped=tuple(dropped),
    )


def _route_key(route: Route) -> tuple[str, str]:
    return route.host, route.path_prefix.rstrip("/") or "/"


def _one_route_per_key(
    candidates: list[tuple[int, Route]], active: Snapshot | None, dropped: list[DroppedRoute]
) -> list[Route]:
    """The routes to apply: one per host and path; the others go to ``dropped`` naming the one kept."""
    incumbent = {_route_key(r): r.app for r in active.routes} if active is not None else {}
    winner: dict[tuple[str, str], int] = {}  # key → position in candidates
    losers: list[int] = []
    for pos, (_, route) in enumerate(candidates):
        key = _route_key(route)
        first = winner.get(key)
        if first is None:
            winner[key] = pos
        elif incumbent.get(key) == route.app != candidates[first][1].app:
            winner[key] = pos
            losers.append(first)
        else:
            losers.append(pos)
    for pos in losers:
        index, route = candidates[pos]
        kept_index, kept = candidates[winner[_route_key(route)]]
        reason = (
            f"host {route.host!r} with path_prefix {route.path_prefix!r} is already routed by "
            f"routes[{kept_index}] (app {kept.app})"
        )
        dropped.append(DroppedRoute(index, route.host, route.path_prefix, route.app, reason))
    kept_positions = set(winner.values())
    return [route for pos, (_, route) in enumerate(candidates) if pos in kept_positions]


def _check_policies(raw: object, problems: _Problems) -> tuple[dict[str, PolicySpec], dict[str, str]]:
    """Valid policies by app, and apps whose policy is invalid → the reason (their routes are dropped)."""
    if not isinstance(raw, dict):
        problems.add("policies", "must map app addresses to {traffic, split, preview_hosts}")
        return {}, {}
    out: dict[str, PolicySpec] = {}
    bad: dict[str, str] = {}
    for app, doc in raw.items():
        path = f"policies.{app}"
        if _check_app(app, path, problems) is None:
            continue
        found: list[FieldProblem] = []
        spec = parse_policy(app, doc, path, found)
        if found or spec is None:
            bad[app] = "; ".join(str(p) for p in found) or "invalid"
        else:
            out[app] = spec
    return out, bad


def _check_callers(raw: object, problems: _Problems) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.add("callers", "must map sha256 token hashes to app addresses")
        return {}
    out: dict[str, str] = {}
    for digest, app in raw.items():
        if not isinstance(digest, str) or not _TOKEN_HASH_RE.match(digest):
            problems.add("callers", f"{digest!r} is not a lower-case sha256 hex digest")
        elif _check_app(app, f"callers.{digest}", problems) is not None:
            out[digest] = str(app)
    return out


_HOST_CACHE: dict[bytes, str] = {}


def host_from_header(value: bytes) -> str:
    """The host part of a Host header value, lower-cased, without port or trailing dot."""
    host = _HOST_CACHE.get(value)
    if host is None:
        if len(_HOST_CACHE) >= 4096:  # bounded: clients choose these bytes
            _HOST_CACHE.clear()
        host = _HOST_CACHE[value] = _normalize_host_header(value)
    return host


def _normalize_host_header(value: bytes) -> str:
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else text
    host = text.partition(":")[0]
    return host.rstrip(".")


def _prefix_matches(prefix: str, path: str) -> bool:
    # Segment-wise, like Kubernetes Ingress pathType Prefix: '/api' matches '/api' and '/api/x', not '/apix'.
    if prefix == "/":
        return True
    trimmed = prefix.rstrip("/")
    if not path.startswith(trimmed):
        return False
    return len(path) == len(trimmed) or path[len(trimmed)] == "/"


class RoutingTable:
    """Host → routes (longest prefix first), built once per snapshot and swapped by one assignment."""

    __slots__ = ("_by_host", "policies", "snapshot")

    def __init__(self, snapshot: Snapshot, policies: dict[str, AppPolicy] | None = None) -> None:
        self.snapshot = snapshot
        self.policies = policies or {}
        by_host: dict[str, list[Route]] = {}
        for route in snapshot.routes:
            route.policy = self.policies.get(route.app)
            by_host.setdefault(route.host, []).append(route)
        for routes in by_host.values():
            routes.sort(key=lambda r: len(r.path_prefix.rstrip("/")), reverse=True)
        self._by_host = by_host

    def has_host(self, host: str) -> bool:
        return host in self._by_host

    def match(self, host: str, path: str) -> Route | None:
        """The route for a request; None when the host is unknown or no prefix matches the path."""
        routes = self._by_host.get(host)
        if routes is None:
            return None
        for route in routes:
            if _prefix_matches(route.path_prefix, path):
                return route
        return None
