"""Tag → digest for deploy-time pinning (``services/image_pinning.py``), and the platform registry's
host[:port] (what a release's registry-relative image is prefixed with, and a cluster's default)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from yunzhou.domain.errors import TemporaryError
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.client import RegistryClient

EXTERNAL_TIMEOUT = 10.0  # seconds: a deploy waits for an external registry at most this long


def registry_address(access: RegistryAccess) -> str | None:
    """host[:port] of the registry the platform uses; None while the managed one is not running."""
    try:
        client = access.client()
    except TemporaryError:
        return None
    with client:
        url = httpx.URL(client.base_url)
    return url.netloc.decode("ascii")


def resolver(access: RegistryAccess) -> Callable[[str | None, str, str], str]:
    """``(base URL or None for the platform registry, repository, tag) → digest``: the platform registry
    with the server's own access, an external one anonymously."""

    def resolve(base: str | None, repository: str, tag: str) -> str:
        client = access.client() if base is None else RegistryClient(base, timeout=EXTERNAL_TIMEOUT)
        with client:
            return client.resolve(repository, tag)

    return resolve
