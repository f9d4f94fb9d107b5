"""Connecting to a cluster: a kubeconfig (as data) → a lightkube client; library errors → domain errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig

from yunzhou.domain.errors import PermanentError, TemporaryError, UserError
from yunzhou.domain.kubeconfig import check_kubeconfig

T = TypeVar("T")
MANAGER = "yunzhou"


@dataclass(frozen=True)
class ClusterInfo:
    server: str
    version: str
    context: str


def client_for(
    kubeconfig: dict[str, Any], context: str | None, *, timeout: float = 10.0, allow_exec: bool = False
) -> Client:
    """A client that runs no command and reads no file on this host (unless ``allow_exec``: the
    operator's choice) — checked here too, for kubeconfigs stored before the API refused them."""
    check_kubeconfig(kubeconfig, allow_exec=allow_exec)
    try:
        config = KubeConfig.from_dict(kubeconfig).get(context_name=context)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"kubeconfig: {exc}") from exc
    return Client(config, field_manager=MANAGER, trust_env=False, timeout=httpx2.Timeout(timeout))


@contextmanager
def translated(cluster: str, what: str) -> Iterator[None]:
    """Library exceptions enter here and leave as the domain's: temporary (retry) or permanent (condition)."""
    try:
        yield
    except ApiError as exc:
        code = exc.status.code or 0
        message = exc.status.message or str(exc)
        if code == 401:
            raise PermanentError(
                f"cluster {cluster}: credentials were rejected while {what} ({message})"
            ) from exc
        if code == 403:
            raise PermanentError(
                f"cluster {cluster}: missing RBAC permission while {what}: {message}"
            ) from exc
        if code == 409:
            raise PermanentError(f"cluster {cluster}: conflict while {what}: {message}") from exc
        if code in (422, 400):
            raise PermanentError(
                f"cluster {cluster}: the server refused an object while {what}: {message}"
            ) from exc
        if code >= 500 or code == 429:
            raise TemporaryError(f"cluster {cluster}: server error {code} while {what}: {message}") from exc
        raise PermanentError(f"cluster {cluster}: error {code} while {what}: {message}") from exc
    except (httpx2.TransportError, OSError) as exc:
        raise TemporaryError(
            f"cluster {cluster} is unreachable while {what}: {exc}", retry_after=5.0
        ) from exc


def probe(
    name: str, kubeconfig: dict[str, Any], context: str | None, *, allow_exec: bool = False
) -> ClusterInfo:
    """Contact the API server: it must answer, accept the credentials, and let us list namespaces."""
    client = client_for(kubeconfig, context, timeout=5.0, allow_exec=allow_exec)
    try:
        with translated(name, "contacting the API server"):
            http: httpx2.Client = client._client._client  # lightkube has no /version call; its transport does
            response = http.get("/version")
            if response.status_code in (401, 403):
                raise PermanentError(f"cluster {name}: credentials were rejected ({response.status_code})")
            response.raise_for_status()
            version = str(response.json().get("gitVersion", "unknown"))
            from lightkube.resources.core_v1 import Namespace

            next(iter(client.list(Namespace, chunk_size=1)), None)
        return ClusterInfo(server=str(http.base_url), version=version, context=context or "")
    finally:
        client.close()


def call(cluster: str, what: str, fn: Callable[[], T]) -> T:
    with translated(cluster, what):
        return fn()
