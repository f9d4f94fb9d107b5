"""Tag → digest for deploy-time pinning (``services/image_pinning.py``), and the platform registry's
host[:port] (what a release's registry-relative image is prefixed with, and a cluster's default)."""

from __future__ import annotations

import json
import threading
import weakref

import httpx

from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.server import ADDRESS_FILE

EXTERNAL_TIMEOUT = 10.0  # seconds: a deploy waits for an external registry at most this long


def _platform_url(access: RegistryAccess) -> str | None:
    if access.settings.url is not None:
        return access.settings.url
    try:
        return str(json.loads((access.root / ADDRESS_FILE).read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def registry_address(access: RegistryAccess) -> str | None:
    """host[:port] of the registry the platform uses; None while the managed one is not running (read
    from the settings or the address file its process writes: no client, no connection)."""
    url = _platform_url(access)
    return None if url is None else httpx.URL(url).netloc.decode("ascii")


class Resolver:
    """``(base URL or None for the platform registry, repository, tag) → digest``: the platform registry
    with the server's own access (one client per registry address, kept: making one costs 30-80 ms),
    an external one anonymously. Its clients are closed by ``close()``, or when it is collected."""

    def __init__(self, access: RegistryAccess) -> None:
        self.access = access
        self._clients: dict[str, RegistryClient] = {}
        self._retired: list[RegistryClient] = []  # of an earlier address: closed with the rest, never in use
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _close_all, self._clients, self._retired)

    def platform_client(self) -> RegistryClient:
        """The kept client of the platform registry (shared: never close it; ``close()`` does)."""
        url = _platform_url(self.access) or ""
        with self._lock:
            if url not in self._clients:  # first use, or the registry restarted on another address
                self._retired += self._clients.values()
                self._clients.clear()
                self._clients[url] = self.access.client()  # no address: the TemporaryError saying so
            return self._clients[url]

    def __call__(self, base: str | None, repository: str, tag: str) -> str:
        if base is None:
            return self.platform_client().resolve(repository, tag)
        with RegistryClient(base, timeout=EXTERNAL_TIMEOUT) as client:
            return client.resolve(repository, tag)

    def close(self) -> None:
        with self._lock:
            _close_all(self._clients, self._retired)


def _close_all(clients: dict[str, RegistryClient], retired: list[RegistryClient]) -> None:
    for client in [*retired, *clients.values()]:
        client.close()
    retired.clear()
    clients.clear()
