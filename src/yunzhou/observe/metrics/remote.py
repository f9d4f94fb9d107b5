"""``PrometheusQueryEngine``: the ``QueryEngine`` interface answered by a real Prometheus over its HTTP API
(used when ``YUNZHOU_PROMETHEUS_URL`` is set). Errors are translated here, once: a query Prometheus
rejects is a ``UserError`` on field ``query``; a Prometheus that cannot be reached is a ``TemporaryError``."""

from __future__ import annotations

from typing import Any

import httpx

from yunzhou.domain.errors import TemporaryError, invalid


class PrometheusQueryEngine:
    def __init__(
        self, url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        return self._get("/api/v1/query", {"query": expr, "time": repr(t)})

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        params = {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
        return self._get("/api/v1/query_range", params)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise TemporaryError(
                f"Prometheus at {self.url} is not answering: {exc}", retry_after=5.0
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TemporaryError(
                f"Prometheus at {self.url} answered HTTP {response.status_code} without a JSON body",
                retry_after=5.0,
            )
        if body.get("status") == "success" and isinstance(body.get("data"), dict):
            data: dict[str, Any] = body["data"]
            return data
        kind = body.get("errorType", "")
        message = str(body.get("error", f"HTTP {response.status_code}"))
        if kind in ("bad_data", "execution") or response.status_code in (400, 422):
            raise invalid("query", message)
        raise TemporaryError(f"Prometheus at {self.url}: {kind or 'error'}: {message}", retry_after=5.0)
