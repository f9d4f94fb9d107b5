"""The registry client's HTTP border: answering authentication challenges and translating error answers.

A ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` is answered by asking the realm for
a token (basic auth with the client's username and password when it has them), kept per scope; a
``Basic`` challenge by sending the credentials. Error answers become ``yunzhou.domain.errors``: refusals
and unknown names → ``UserError`` naming what was asked for, 5xx, 429 and 405 UNSUPPORTED (the registry
read-only during garbage collection) → ``TemporaryError``.
"""

from __future__ import annotations

import re
import threading

import httpx

from yunzhou.domain.errors import PermanentError, TemporaryError, UserError

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuth:
    """Credentials and the bearer tokens they bought, one per scope; safe to share between threads."""

    def __init__(self, username: str | None, password: str | None) -> None:
        self._basic = httpx.BasicAuth(username, password or "") if username is not None else None
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def header(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
        return {"Authorization": f"Bearer {token}"} if token is not None else {}

    def answer(self, http: httpx.Client, r: httpx.Response, scope: str, what: str) -> bool:
        """Answer a 401's challenge; True when the request is worth sending again."""
        kind, _, rest = r.headers.get("WWW-Authenticate", "").partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        if kind.lower() == "basic":
            if self._basic is None or http.auth is not None:
                return False
            http.auth = self._basic
            return True
        if kind.lower() != "bearer" or "realm" not in params:
            return False
        token = self._fetch_token(http, params, what)
        with self._lock:
            self._tokens[scope] = token
        return True

    def _fetch_token(self, http: httpx.Client, params: dict[str, str], what: str) -> str:
        realm = params["realm"]
        query: dict[str, str | list[str]] = {"scope": params.get("scope", "").split()}
        if "service" in params:
            query["service"] = params["service"]
        try:
            t = http.get(realm, params=query, auth=self._basic)
        except httpx.TransportError as exc:
            raise TemporaryError(f"registry token service {realm}: {exc}", retry_after=2.0) from None
        if t.status_code in (401, 403):
            raise UserError(
                f"registry refused access to {what}: the token service turned the credentials down",
                code="denied",
            )
        if not t.is_success:
            raise error_for(t, f"a token for {what}", realm)
        try:
            token = t.json().get("token") or t.json().get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise PermanentError(f"registry token service {realm} answered without a token")
        return token


def error_for(r: httpx.Response, what: str, where: str) -> Exception:
    """The error to raise for a registry's (or token service's) error answer about ``what``."""
    detail = _registry_message(r)
    status = r.status_code
    if status >= 500:
        return TemporaryError(f"registry {where} failed on {what} ({status}){detail}", retry_after=5.0)
    if status == 401:
        return UserError(f"registry refused {what}: not authenticated (401){detail}", code="denied")
    if status == 403:
        return UserError(f"registry refused {what}: access denied (403){detail}", code="denied")
    if status == 404:
        return UserError(f"{what} not found in the registry{detail}", code="not_found")
    if status == 429:
        return TemporaryError(f"registry {where} is busy (429) on {what}", retry_after=5.0)
    if status == 405 and "UNSUPPORTED" in _codes(r):  # read-only while garbage is collected (registry/gc.py)
        return TemporaryError(
            f"registry {where} is read-only for maintenance (405 UNSUPPORTED) on {what}; retry shortly",
            retry_after=5.0,
        )
    return UserError(f"registry rejected {what} ({status}){detail}", code="registry_rejected")


def _errors(r: httpx.Response) -> list[dict[str, object]]:
    try:
        errors = r.json().get("errors") or []
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _codes(r: httpx.Response) -> set[str]:
    return {str(e.get("code")) for e in _errors(r)}


def _registry_message(r: httpx.Response) -> str:
    parts = [f"{e.get('code')}: {e.get('message')}" for e in _errors(r)]
    return (": " + "; ".join(parts)) if parts else ""
