"""The server's own way into the registry: a ``RegistryClient`` whose token requests are answered in
process with a full-access token from the platform's issuer (the server pushes builds, pulls for the
local target, deletes for retention), so it needs neither the API nor an admin token. An external
registry is used with its own credentials instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from yunzhou.domain.errors import TemporaryError
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.images import list_images
from yunzhou.registry.server import ADDRESS_FILE, RegistrySettings
from yunzhou.registry.tokens import REGISTRY_DIR, TokenIssuer, parse_scope

SERVICE_SUBJECT = "yunzhou-server"


class _ServiceTokens(httpx.BaseTransport):
    """Answers requests to the token realm with a locally issued token granting every scope asked for;
    everything else goes to the network."""

    def __init__(self, issuer: TokenIssuer, realm: str, inner: httpx.BaseTransport) -> None:
        self._issuer = issuer
        self._realm = httpx.URL(realm).copy_with(query=None)
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.copy_with(query=None) == self._realm:
            access = parse_scope(request.url.params.get_list("scope"))
            token = self._issuer.issue(SERVICE_SUBJECT, access)
            return httpx.Response(200, json=token.answer(), request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def service_client(url: str, issuer: TokenIssuer, realm: str, *, timeout: float = 60.0) -> RegistryClient:
    """A client of the managed registry at ``url`` with the server's full access."""
    transport = _ServiceTokens(issuer, realm, httpx.HTTPTransport(trust_env=False))
    return RegistryClient(url, transport=transport, timeout=timeout)


class RegistryAccess:
    """The registry this server uses, for the composition root: the managed one (found through the
    address file its ``RegistryProcess`` writes, so an API process that does not run it finds it too)
    or the external one of ``YUNZHOU_REGISTRY_URL``."""

    def __init__(self, data_dir: Path, settings: RegistrySettings) -> None:
        self.settings = settings
        self.root = data_dir / REGISTRY_DIR
        self._issuer: TokenIssuer | None = None

    def client(self) -> RegistryClient:
        """A new client with the server's access (close it after use)."""
        if self.settings.url is not None:
            return RegistryClient(
                self.settings.url, username=self.settings.username, password=self.settings.password
            )
        try:
            address = json.loads((self.root / ADDRESS_FILE).read_text())
        except (OSError, ValueError):
            raise TemporaryError(
                "the managed registry is not running (no registry/address.json in the data dir); "
                "`yunzhou server` starts it"
            ) from None
        if self._issuer is None:
            self._issuer = TokenIssuer(self.root)
        return service_client(str(address["url"]), self._issuer, str(address["realm"]))

    def images(self, repository: str) -> list[dict[str, Any]]:
        """The repository's images without attachments, newest first (``ServiceContext.registry_images``)."""
        with self.client() as client:
            storage = None if self.settings.url is not None else self.root / "data"
            listed = list_images(client, repository, storage)
        return [image.view() for image in listed if image.attachment_of is None]
