"""An app's own Prometheus endpoint, as its settings declare it (``metrics: {port: web, path: /metrics}``),
and the chart windows of the per-app metrics view. Pure: parsing and validation only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import FieldProblem, invalid

_KEYS = ("port", "path")
_PORT_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where an instance serves Prometheus text: a Score service port (name or number) and a path."""

    port: str | int | None = None  # None: the instance's own PORT
    path: str = "/metrics"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path} if self.port is None else {"port": self.port, "path": self.path}


def metrics_problems(value: object, path: str = "settings.metrics") -> list[FieldProblem]:
    """Every problem with a ``metrics:`` settings value (None means "not declared" and is fine)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [FieldProblem(path, "must be a mapping like {port: web, path: /metrics}")]
    problems = [
        FieldProblem(f"{path}.{key}", f"unknown field {key!r}; allowed: {', '.join(_KEYS)}")
        for key in value
        if key not in _KEYS
    ]
    port = value.get("port")
    if port is not None and not (
        (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536)
        or (isinstance(port, str) and _PORT_NAME_RE.match(port))
    ):
        problems.append(FieldProblem(f"{path}.port", "must be a service port name or an integer 1-65535"))
    where = value.get("path", "/metrics")
    if not isinstance(where, str) or not where.startswith("/") or any(c in where for c in "#? \t\r\n"):
        problems.append(FieldProblem(f"{path}.path", "must be a path starting with '/' (no query or spaces)"))
    return problems


def parse_metrics_endpoint(value: object, path: str = "settings.metrics") -> MetricsEndpoint | None:
    """The declared endpoint, or None when the settings declare none. Raises UserError naming the field."""
    problems = metrics_problems(value, path)
    if problems:
        raise invalid(problems[0].path, problems[0].message)
    if not isinstance(value, Mapping):
        return None
    return MetricsEndpoint(port=value.get("port"), path=value.get("path", "/metrics"))


# The per-app chart view: window → (PromQL range for rate(), resolution step in seconds).
CHART_WINDOWS: dict[str, tuple[str, int]] = {
    "15m": ("1m", 15),
    "1h": ("1m", 60),
    "6h": ("5m", 300),
    "24h": ("10m", 900),
    "7d": ("1h", 3600),
}
_WINDOW_SECONDS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}


def chart_window(value: str, path: str = "query.window") -> tuple[int, str, int]:
    """``"1h"`` → (window seconds, rate range, step seconds); anything else names the allowed windows."""
    if value not in CHART_WINDOWS:
        raise invalid(path, f"{value!r} is not a window; allowed: {', '.join(CHART_WINDOWS)}")
    rate_range, step = CHART_WINDOWS[value]
    return _WINDOW_SECONDS[value], rate_range, step
