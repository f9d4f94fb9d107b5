"""Build jobs (docs/api.md#builds): start, list, get, cancel, and the log — a page from an offset, or
followed live (NDJSON) with a reconnect from the last offset when the connection is cut."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from yunzhou.client.errors import ApiError, error_from_response

Json = dict[str, Any]
TERMINAL_BUILD_STATES = frozenset({"succeeded", "failed", "cancelled"})
FOLLOW_RECONNECTS = 5  # consecutive cut connections before following gives up
FOLLOW_READ_TIMEOUT = 90.0  # the server sends a heartbeat line at least every 15 s


class BuildCalls:
    """Mixed into YunzhouClient (which provides the transport)."""

    _http: httpx.Client
    _sleep: Callable[[float], None]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _items(self, path: str, params: dict[str, Any] | None = None) -> list[Json]:
        raise NotImplementedError

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    def start_build(
        self,
        project: str,
        env: str,
        artifact: str,
        *,
        score: Json | None = None,
        settings: Json | None = None,
        app: str | None = None,
        stack: str | None = None,
        time_limit_seconds: int | None = None,
    ) -> Json:
        """Queue a build of an uploaded artifact; with a Score, success deploys it as a new release."""
        body = {
            "artifact": artifact, "score": score, "settings": settings, "app": app, "stack": stack,
            "time_limit_seconds": time_limit_seconds,
        }  # fmt: skip
        path = f"/projects/{_segment(project)}/environments/{_segment(env)}/builds"
        result: Json = self._request("POST", path, json={k: v for k, v in body.items() if v is not None})
        return result

    def list_builds(
        self, project: str, env: str, app: str | None = None, limit: int | None = None
    ) -> list[Json]:
        params = {k: v for k, v in {"app": app, "limit": limit}.items() if v is not None}
        return self._items(f"/projects/{_segment(project)}/environments/{_segment(env)}/builds", params)

    def get_build(self, build_id: str) -> Json:
        result: Json = self._request("GET", f"/builds/{_segment(build_id)}")
        return result

    def cancel_build(self, build_id: str) -> Json:
        result: Json = self._request("POST", f"/builds/{_segment(build_id)}/cancel")
        return result

    def build_log(self, build_id: str, offset: int = 0) -> Json:
        """``{"text", "offset", "next_offset", "state", "done"}`` from byte ``offset``."""
        result: Json = self._request("GET", f"/builds/{_segment(build_id)}/logs", params={"offset": offset})
        return result

    def follow_build_log(self, build_id: str, offset: int = 0) -> Iterator[Json]:
        """Yield ``{"offset", "text", "next_offset"}`` chunks as the build writes them, then one
        ``{"done": true, "state", "error", "release", "next_offset"}`` when it finished."""
        cuts = 0
        while True:
            try:
                for doc in self._stream_log(build_id, offset):
                    cuts = 0
                    if doc.get("done"):
                        yield doc
                        return
                    if doc.get("text"):
                        offset = int(doc["next_offset"])
                        yield doc
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in (0, 502, 503, 504):
                    raise
                cuts += 1
                if cuts > FOLLOW_RECONNECTS:
                    raise
                self._sleep(min(2.0 * cuts, 10.0))
                continue
            # the stream ended without its last line (a proxy or the server cut it): go on from there
            cuts += 1
            if cuts > FOLLOW_RECONNECTS:
                raise ApiError(
                    0, "transport", f"following build {build_id}'s log: the stream kept ending early"
                )

    def _stream_log(self, build_id: str, offset: int) -> Iterator[Json]:
        path = f"/builds/{_segment(build_id)}/logs"
        params: dict[str, str | int] = {"offset": offset, "follow": "true"}
        timeout = httpx.Timeout(30.0, read=FOLLOW_READ_TIMEOUT)
        with self._http.stream("GET", path, params=params, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                try:
                    body = response.json()
                except ValueError:
                    body = None
                request_id = response.headers.get("X-Request-Id")
                raise error_from_response(response.status_code, body, response.text, request_id)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)


def _segment(value: object) -> str:
    return quote(str(value), safe="")
