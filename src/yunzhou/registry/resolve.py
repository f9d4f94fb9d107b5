"""Tag → digest for deploy-time pinning (``services/image_pinning.py``), and the platform registry's
host[:port] (what a release's registry-relative image is prefixed with, and a cluster's default)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

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


def resolver(access: RegistryAccess) -> Callable[[str | None, str, str], str]:
    """``(base URL or None for the platform registry, repository, tag) → digest``: the platform registry
    with the server's own access (one client per registry address, kept: making one costs 30-80 ms),
    an external one anonymously."""
    clients: dict[str, RegistryClient] = {}
    lock = threading.Lock()

    def platform_client() -> RegistryClient:
        url = _platform_url(access) or ""
        with lock:
            if url not in clients:  # first use, or the registry restarted on another address
                clients.clear()  # an old one is left to its last user and the garbage collector
                clients[url] = access.client()  # no address: the TemporaryError saying so
            return clients[url]

    def resolve(base: str | None, repository: str, tag: str) -> str:
        if base is None:
            return platform_client().resolve(repository, tag)
        with RegistryClient(base, timeout=EXTERNAL_TIMEOUT) as client:
            return client.resolve(repository, tag)

    return resolve
