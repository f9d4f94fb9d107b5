"""Registered domains the platform watches for registration expiry (docs/dns.md#registered-domains-expiry)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

Json = dict[str, Any]


class DomainCalls:
    """Mixed into YunzhouClient (which provides the transport)."""

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _items(self, path: str, params: dict[str, Any] | None = None) -> list[Json]:
        raise NotImplementedError

    def list_watched_domains(self) -> list[Json]:
        return self._items("/domains")

    def watch_domain(self, name: str) -> Json:
        result: Json = self._request("POST", "/domains", json={"name": name})
        return result

    def unwatch_domain(self, name: str) -> None:
        self._request("DELETE", f"/domains/{quote(name, safe='')}")
