"""The server's own way into the registry: a ``RegistryClient`` whose token requests are answered in
process with a full-access token from the platform's issuer (the server pushes builds, pulls for the
local target, deletes for retention), so it needs neither the API nor an admin token. An external
registry is used with its own credentials instead."""

from __future__ import annotations

import httpx

from yunzhou.registry.client import RegistryClient
from yunzhou.registry.tokens import TokenIssuer, parse_scope

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
