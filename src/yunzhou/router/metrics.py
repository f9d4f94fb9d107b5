"""Per-app request metrics, rendered in the Prometheus text exposition format (version 0.0.4).

Kept in plain dicts and lists: the hot path does one dict lookup, one bisect and a few increments.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Traffic-policy counters: kind → (detail label, help text); rendered as yunzhou_router_<kind>_total.
POLICY_COUNTERS = {
    "retries": (
        "reason",
        "Retries by app and reason (connect-failure, reset, 5xx, gateway-error, per-try-timeout).",
    ),
    "retry_budget_exhausted": ("route", "Retries refused by the retry budget, by app and traffic route."),
    "ejections": ("backend", "Outlier-detection ejections, by app and backend id."),
    "rate_limited": ("policy", "Requests answered 429 by a rate limit, by app and limit."),
    "denied": ("policy", "Requests answered 403 by an access policy, by app and deciding rule."),
    "pool_overflow": ("policy", "Requests answered 503 because the connection pool and its queue were full."),
    "timeouts": ("kind", "Requests that hit a policy timeout, by app and kind (perTry, overall)."),
}


@dataclass(slots=True)
class SeriesStats:
    """Requests of one (app, release): counts by status class and a latency histogram."""

    by_class: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    count: int = 0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


CERTIFICATE_EXPIRY = "yunzhou_certificate_expiry_timestamp_seconds"


def render_certificate_expiry(not_after: Mapping[str, float]) -> str:
    """One gauge per served certificate: its leaf's notAfter as a Unix time (as blackbox_exporter's
    ``probe_ssl_earliest_cert_expiry``), labelled by the snapshot's name (host, ``*.zone`` or ``*``)."""
    if not not_after:
        return ""
    lines = [
        f"# HELP {CERTIFICATE_EXPIRY} When the certificate the router serves for a host stops being valid "
        "(its notAfter, Unix time).",
        f"# TYPE {CERTIFICATE_EXPIRY} gauge",
    ]
    for host, expires in sorted(not_after.items()):
        lines.append(f"{CERTIFICATE_EXPIRY}{_labels(host=host)} {_number(expires)}")
    return "\n".join(lines) + "\n"


class RouterMetrics:
    def __init__(self) -> None:
        self.series: dict[tuple[str, int | None], SeriesStats] = {}
        self.in_flight: dict[str, int] = {}
        self.backend_in_flight: dict[str, int] = {}  # by backend id; absent means 0
        self.connect_failures: dict[tuple[str, str], int] = {}
        self.unrouted: int = 0
        self.config_version: int = 0
        self.config_applied: int = 0
        self.config_rejected: int = 0
        self.admin_unauthorized: int = 0  # admin requests without the admin token (401)
        self.routes_dropped: int = 0  # routes of the active snapshot left out (GET /status says why)
        self.client_connections: int = 0
        # slow or greedy clients: heads/bodies not received in time, connections over the per-address bound
        self.header_timeouts: int = 0
        self.body_timeouts: int = 0
        self.connections_refused: int = 0
        self.tls_unknown_names: int = 0  # TLS handshakes refused: no certificate for the SNI name, no default
        self.upstream_connections: int = 0
        # traffic policy: (kind, app, detail) → count; kinds are the keys of POLICY_COUNTERS
        self.policy_events: dict[tuple[str, str, str], int] = {}
        # upgrade requests (WebSocket, ...): (app, outcome) → count; tunnels open now by app; closed tunnels
        # by (app, the side that ended them)
        self.upgrades: dict[tuple[str, str], int] = {}
        self.tunnels: dict[str, int] = {}
        self.tunnels_closed: dict[tuple[str, str], int] = {}

    def upgrade_outcome(self, app: str, outcome: str) -> None:
        self.upgrades[(app, outcome)] = self.upgrades.get((app, outcome), 0) + 1

    def tunnel_opened(self, app: str) -> None:
        self.tunnels[app] = self.tunnels.get(app, 0) + 1

    def tunnel_closed(self, app: str, by: str) -> None:
        self.tunnels[app] -= 1
        self.tunnels_closed[(app, by)] = self.tunnels_closed.get((app, by), 0) + 1

    def policy_event(self, kind: str, app: str, detail: str) -> None:
        key = (kind, app, detail)
        self.policy_events[key] = self.policy_events.get(key, 0) + 1

    def request_started(self, app: str) -> None:
        self.in_flight[app] = self.in_flight.get(app, 0) + 1

    def request_finished(self, app: str, release: int | None, status: int, seconds: float) -> None:
        self.in_flight[app] -= 1
        key = (app, release)
        stats = self.series.get(key)
        if stats is None:
            stats = self.series[key] = SeriesStats()
        index = status // 100 - 1
        if 0 <= index < len(STATUS_CLASSES):
            stats.by_class[index] += 1
        stats.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        stats.latency_sum += seconds
        stats.count += 1

    def backend_started(self, backend_id: str) -> None:
        self.backend_in_flight[backend_id] = self.backend_in_flight.get(backend_id, 0) + 1

    def backend_finished(self, backend_id: str) -> None:
        left = self.backend_in_flight[backend_id] - 1
        if left:
            self.backend_in_flight[backend_id] = left
        else:
            del self.backend_in_flight[backend_id]  # keeps the map as small as the set of busy backends

    def tls_name_unknown(self) -> None:
        self.tls_unknown_names += 1

    def connect_failed(self, app: str, backend_id: str) -> None:
        key = (app, backend_id)
        self.connect_failures[key] = self.connect_failures.get(key, 0) + 1

    def render(self) -> str:
        lines: list[str] = []

        def header(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        header(
            "yunzhou_router_requests_total", "counter", "Proxied requests by app, release and status class."
        )
        ordered = sorted(self.series.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1))
        for (app, release), stats in ordered:
            rel = "" if release is None else str(release)
            for cls, value in zip(STATUS_CLASSES, stats.by_class, strict=True):
                if value or cls != "1xx":
                    lines.append(
                        f"yunzhou_router_requests_total{_labels(app=app, release=rel, code=cls)} {value}"
                    )

        name = "yunzhou_router_request_duration_seconds"
        header(name, "histogram", "Time from request headers to the end of the response, by app and release.")
        for (app, release), stats in ordered:
            rel = "" if release is None else str(release)
            cumulative = 0
            for bound, value in zip((*LATENCY_BUCKETS, float("inf")), stats.buckets, strict=True):
                cumulative += value
                le = "+Inf" if bound == float("inf") else _number(bound)
                lines.append(f"{name}_bucket{_labels(app=app, release=rel, le=le)} {cumulative}")
            lines.append(f"{name}_sum{_labels(app=app, release=rel)} {stats.latency_sum!r}")
            lines.append(f"{name}_count{_labels(app=app, release=rel)} {stats.count}")

        header("yunzhou_router_requests_in_flight", "gauge", "Requests being proxied now, by app.")
        for app, value in sorted(self.in_flight.items()):
            lines.append(f"yunzhou_router_requests_in_flight{_labels(app=app)} {value}")

        header(
            "yunzhou_router_backend_requests_in_flight",
            "gauge",
            "Requests sent to a backend and not yet answered, by backend id (busy backends only).",
        )
        for backend_id, value in sorted(self.backend_in_flight.items()):
            lines.append(f"yunzhou_router_backend_requests_in_flight{_labels(backend=backend_id)} {value}")

        header(
            "yunzhou_router_upstream_connect_failures_total",
            "counter",
            "Failed connection attempts to a backend, by app and backend id.",
        )
        for (app, backend_id), value in sorted(self.connect_failures.items()):
            labels = _labels(app=app, backend=backend_id)
            lines.append(f"yunzhou_router_upstream_connect_failures_total{labels} {value}")

        for kind, (label, text) in POLICY_COUNTERS.items():
            metric = f"yunzhou_router_{kind}_total"
            header(metric, "counter", text)
            for (k, app, detail), value in sorted(self.policy_events.items()):
                if k == kind:
                    lines.append(f"{metric}{_labels(app=app, **{label: detail})} {value}")

        upgrade_counters = (
            (
                "yunzhou_router_upgrades_total",
                "Upgrade (WebSocket) requests by app and outcome: switched (101, tunnel opened), "
                "declined (the backend answered otherwise), refused (the router answered 4xx), "
                "failed (5xx), abandoned.",
                "outcome",
                self.upgrades,
            ),
            (
                "yunzhou_router_tunnels_closed_total",
                "Upgraded connections closed, by app and what ended them (client, backend, idle_timeout).",
                "by",
                self.tunnels_closed,
            ),
        )
        for metric, text, label, counts in upgrade_counters:
            header(metric, "counter", text)
            for (app, detail), value in sorted(counts.items()):
                lines.append(f"{metric}{_labels(app=app, **{label: detail})} {value}")
        header("yunzhou_router_tunnels", "gauge", "Upgraded connections open now, by app.")
        for app, value in sorted(self.tunnels.items()):
            lines.append(f"yunzhou_router_tunnels{_labels(app=app)} {value}")

        gauges: list[tuple[str, str, str, float]] = [
            (
                "yunzhou_router_unrouted_requests_total",
                "counter",
                "Requests answered 404: no route.",
                self.unrouted,
            ),
            (
                "yunzhou_router_config_version",
                "gauge",
                "Version of the active config snapshot.",
                self.config_version,
            ),
            ("yunzhou_router_config_applied_total", "counter", "Snapshots applied.", self.config_applied),
            (
                "yunzhou_router_config_rejected_total",
                "counter",
                "Snapshots refused (409/422).",
                self.config_rejected,
            ),
            (
                "yunzhou_router_admin_unauthorized_total",
                "counter",
                "Admin API requests refused 401: no or a wrong admin token.",
                self.admin_unauthorized,
            ),
            (
                "yunzhou_router_config_routes_dropped",
                "gauge",
                "Routes of the active snapshot not applied (invalid or host already routed).",
                self.routes_dropped,
            ),
            (
                "yunzhou_router_client_header_timeouts_total",
                "counter",
                "Connections answered 408 and closed: no whole request head within --header-timeout.",
                self.header_timeouts,
            ),
            (
                "yunzhou_router_client_body_timeouts_total",
                "counter",
                "Requests answered 408 (or cut): no request body byte for --body-timeout.",
                self.body_timeouts,
            ),
            (
                "yunzhou_router_client_connections_refused_total",
                "counter",
                "Connections answered 429 and closed: the address had --max-connections-per-client open.",
                self.connections_refused,
            ),
            (
                "yunzhou_router_tls_unknown_name_total",
                "counter",
                "TLS handshakes refused: no certificate for the SNI name (or none sent) and no default.",
                self.tls_unknown_names,
            ),
            (
                "yunzhou_router_client_connections",
                "gauge",
                "Open client connections.",
                self.client_connections,
            ),
            (
                "yunzhou_router_upstream_connections",
                "gauge",
                "Open backend connections.",
                self.upstream_connections,
            ),
        ]
        for metric, kind, text, number in gauges:
            header(metric, kind, text)
            lines.append(f"{metric} {_number(number)}")
        return "\n".join(lines) + "\n"
