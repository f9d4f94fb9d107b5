"""Stacks (docs/api.md#stacks): list, build (and wait for it), export to a file, import a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from yunzhou.client.errors import ApiError, error_from_response

Json = dict[str, Any]
TERMINAL_STACK_BUILD_STATES = frozenset({"built", "failed"})
ARCHIVE_TIMEOUT = httpx.Timeout(30.0, read=900.0, write=900.0)  # hundreds of MiB, checked blob by blob
CHUNK = 1 << 20


class StackCalls:
    """Mixed into YunzhouClient (which provides the transport)."""

    _http: httpx.Client
    _sleep: Callable[[float], None]
    _clock: Callable[[], float]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _items(self, path: str, params: dict[str, Any] | None = None) -> list[Json]:
        raise NotImplementedError

    def list_stacks(self) -> list[Json]:
        return self._items("/stacks")

    def get_stack(self, name: str) -> Json:
        """One stack as `GET /stacks` lists it (ApiError 404 when the server has no such stack)."""
        for stack in self.list_stacks():
            if stack.get("name") == name:
                return stack
        raise ApiError(404, "not_found", f"the server has no stack {name!r}")

    def build_stack(self, name: str) -> Json:
        """Ask the server to build the stack (202); its ``build`` says how far it is."""
        result: Json = self._request("POST", f"/stacks/{quote(name, safe='')}/build")
        return result

    def wait_for_stack_build(
        self,
        name: str,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_progress: Callable[[Json], None] | None = None,
    ) -> Json:
        """Poll until the stack's build is built or failed, or ``timeout`` seconds passed; returns the
        stack as last seen (its ``build.state`` says which)."""
        started = self._clock()
        while True:
            stack = self.get_stack(name)
            if on_progress is not None:
                on_progress(stack)
            if ((stack.get("build") or {}).get("state")) in TERMINAL_STACK_BUILD_STATES:
                return stack
            if timeout is not None and self._clock() - started >= timeout:
                return stack
            self._sleep(interval)

    def export_stacks(self, names: list[str], out: Path) -> int:
        """Write the stacks' archive to ``out`` (replaced only when complete); returns its size."""
        partial = out.with_name(f".{out.name}.partial")
        params = {"name": list(names)}
        try:
            with self._http.stream(
                "GET", "/stacks/export", params=params, timeout=ARCHIVE_TIMEOUT
            ) as response:
                if not response.is_success:
                    response.read()
                    raise _error(response)
                with partial.open("wb") as f:
                    for chunk in response.iter_bytes(CHUNK):
                        f.write(chunk)
            partial.replace(out)
        except httpx.TransportError as exc:
            raise ApiError(0, "transport", f"the stacks' archive could not be downloaded: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return out.stat().st_size

    def import_stacks(self, archive: Path) -> Json:
        with archive.open("rb") as f:
            result: Json = self._request(
                "POST",
                "/stacks/import",
                content=iter(lambda: f.read(CHUNK), b""),
                headers={"Content-Type": "application/x-tar"},
                timeout=ARCHIVE_TIMEOUT,
            )
        return result


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(
        response.status_code, body, response.text, response.headers.get("X-Request-Id")
    )
