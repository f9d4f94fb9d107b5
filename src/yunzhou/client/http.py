"""YunzhouClient: one typed method per endpoint of docs/api.md. Returns the API's JSON as plain data."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from yunzhou.client.artifact import SourceArchive, pack_source
from yunzhou.client.builds import BuildCalls
from yunzhou.client.config import DEFAULT_URL, ClientConfig, load_config
from yunzhou.client.domains import DomainCalls
from yunzhou.client.errors import ApiError, ServerUnreachable, WaitTimeout, error_from_response
from yunzhou.client.stacks import StackCalls
from yunzhou.domain.errors import FieldProblem

API_PREFIX = "/api/v1"
TERMINAL_ROLLOUT_STATES = frozenset({"succeeded", "failed", "superseded"})
MAX_RETRY_AFTER = 10.0
FOLLOW_PAGE = 1000  # records per poll while following logs

Json = dict[str, Any]
ProgressCallback = Callable[[Json], None]


def _segment(value: object) -> str:
    """One path segment, escaped so that principals like ``user:a/b`` stay a single segment."""
    return quote(str(value), safe="")


class YunzhouClient(BuildCalls, StackCalls, DomainCalls):
    """A synchronous client for the Yunzhou HTTP API (v1).

    ``sleep`` and ``clock`` are injectable so that waiting and retrying can be tested without real time.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/").removesuffix(API_PREFIX)
        headers = {"Accept": "application/json", "User-Agent": "yunzhou-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )
        self._retries = retries
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **kwargs: Any) -> YunzhouClient:
        """A client for ``config`` (default: from YUNZHOU_URL / YUNZHOU_TOKEN / the admin token file)."""
        config = config or load_config()
        return cls(config.url, config.token, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> YunzhouClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(self.url, _connect_reason(exc)) from exc
        except httpx.TimeoutException as exc:
            raise ApiError(
                0, "timeout", f"The Yunzhou server at {self.url} did not answer in time ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            message = f"Could not talk to the Yunzhou server at {self.url}: {exc}"
            raise ApiError(0, "transport", message) from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempts = self._retries + 1 if method == "GET" else 1  # only idempotent reads are retried
        for attempt in range(attempts):
            response = self._send(method, path, **kwargs)
            if response.is_success:
                return _json_or_none(response)
            error = _error(response)
            if error.status != 503 or attempt == attempts - 1:
                raise error
            self._sleep(min(error.retry_after or 1.0, MAX_RETRY_AFTER))
        raise AssertionError("unreachable")  # pragma: no cover

    def _items(self, path: str, params: dict[str, Any] | None = None) -> list[Json]:
        body = self._request("GET", path, params=params)
        items = body.get("items", []) if isinstance(body, dict) else []
        return list(items)

    @staticmethod
    def _app_path(project: str, env: str, app: str) -> str:
        return f"/projects/{_segment(project)}/environments/{_segment(env)}/apps/{_segment(app)}"

    # -- server ----------------------------------------------------------------------------------

    def healthz(self) -> Json:
        result: Json = self._request("GET", "/healthz")
        return result

    def whoami(self) -> Json:
        result: Json = self._request("GET", "/whoami")
        return result

    # -- projects and members --------------------------------------------------------------------

    def create_project(self, name: str, display_name: str | None = None) -> Json:
        body: Json = {"name": name}
        if display_name is not None:
            body["display_name"] = display_name
        result: Json = self._request("POST", "/projects", json=body)
        return result

    def list_projects(self) -> list[Json]:
        return self._items("/projects")

    def get_project(self, name: str) -> Json:
        result: Json = self._request("GET", f"/projects/{_segment(name)}")
        return result

    def delete_project(self, name: str, version: int | None = None) -> None:
        params = {"version": version} if version is not None else None
        self._request("DELETE", f"/projects/{_segment(name)}", params=params)

    def list_members(self, project: str) -> list[Json]:
        return self._items(f"/projects/{_segment(project)}/members")

    def set_member(self, project: str, principal: str, role: str) -> Json:
        path = f"/projects/{_segment(project)}/members/{_segment(principal)}"
        result: Json = self._request("PUT", path, json={"role": role})
        return result

    def remove_member(self, project: str, principal: str) -> None:
        self._request("DELETE", f"/projects/{_segment(project)}/members/{_segment(principal)}")

    # -- environments ----------------------------------------------------------------------------

    def create_environment(
        self,
        project: str,
        name: str,
        target: str = "local",
        namespace: str | None = None,
        *,
        require_signed_images: bool = False,
        egress: bool = True,
    ) -> Json:
        body: Json = {"name": name, "target": target}
        if namespace is not None:
            body["namespace"] = namespace
        if require_signed_images:
            body["require_signed_images"] = True
        if not egress:
            body["egress"] = False
        result: Json = self._request("POST", f"/projects/{_segment(project)}/environments", json=body)
        return result

    def update_environment(
        self, project: str, env: str, version: int | None = None, **policies: bool
    ) -> Json:
        """Change policies: ``require_signed_images=``, ``egress=`` (those given)."""
        body: Json = {**policies, **({"version": version} if version is not None else {})}
        path = f"/projects/{_segment(project)}/environments/{_segment(env)}"
        result: Json = self._request("PATCH", path, json=body)
        return result

    # ---- names (docs/names.md)
    def set_environment_names(
        self, project: str, env: str, version: int | None = None, **changes: Any
    ) -> Json:
        """``names=`` (a dict, or None to stop naming) and/or ``tls=`` (off, local, acme, issuer:NAME …)."""
        body: Json = {**changes, **({"version": version} if version is not None else {})}
        path = f"/projects/{_segment(project)}/environments/{_segment(env)}/names"
        result: Json = self._request("PATCH", path, json=body)
        return result

    def list_dns_providers(self) -> list[Json]:
        return self._items("/dns/providers")

    def list_dns_zones(self) -> list[Json]:
        """Each provider's name, kind and zones (any user; no servers, no secrets)."""
        return self._items("/dns/zones")

    def add_dns_provider(self, name: str, kind: str, settings: Json, secret: str | None = None) -> Json:
        body = {"name": name, "kind": kind, "settings": settings, "secret": secret}
        result: Json = self._request("POST", "/dns/providers", json=body)
        return result

    def remove_dns_provider(self, name: str) -> None:
        self._request("DELETE", f"/dns/providers/{_segment(name)}")

    def list_dns_records(self, project: str | None = None) -> list[Json]:
        return self._items("/dns/records", params={"project": project} if project else None)

    def _domains(self, project: str, env: str, app: str) -> str:
        return f"/projects/{_segment(project)}/environments/{_segment(env)}/apps/{_segment(app)}/domains"

    def list_custom_domains(self, project: str, env: str, app: str) -> list[Json]:
        return self._items(self._domains(project, env, app))

    def add_custom_domain(self, project: str, env: str, app: str, host: str) -> Json:
        result: Json = self._request("POST", self._domains(project, env, app), json={"host": host})
        return result

    def verify_custom_domain(self, project: str, env: str, app: str, host: str) -> Json:
        result: Json = self._request("POST", f"{self._domains(project, env, app)}/{_segment(host)}/verify")
        return result

    def remove_custom_domain(self, project: str, env: str, app: str, host: str) -> None:
        self._request("DELETE", f"{self._domains(project, env, app)}/{_segment(host)}")

    def list_environments(self, project: str) -> list[Json]:
        return self._items(f"/projects/{_segment(project)}/environments")

    def get_environment(self, project: str, env: str) -> Json:
        result: Json = self._request("GET", f"/projects/{_segment(project)}/environments/{_segment(env)}")
        return result

    def delete_environment(self, project: str, env: str, version: int | None = None) -> None:
        params = {"version": version} if version is not None else None
        self._request("DELETE", f"/projects/{_segment(project)}/environments/{_segment(env)}", params=params)

    # -- apps, deployments, releases, rollouts ---------------------------------------------------

    def deploy(
        self, project: str, env: str, score: Json, settings: Json | None = None, artifact: str | None = None
    ) -> Json:
        """Create a release from a parsed Score document; returns the Deployment {app, release, rollout}."""
        path = f"/projects/{_segment(project)}/environments/{_segment(env)}/deployments"
        body = {"score": score, "settings": settings, "artifact": artifact}
        result: Json = self._request("POST", path, json=body)
        return result

    def list_apps(self, project: str, env: str) -> list[Json]:
        return self._items(f"/projects/{_segment(project)}/environments/{_segment(env)}/apps")

    def get_app(self, project: str, env: str, app: str) -> Json:
        result: Json = self._request("GET", self._app_path(project, env, app))
        return result

    def remove_app(self, project: str, env: str, app: str) -> Json | None:
        """Record the intent to remove the app (202); returns the response body when there is one."""
        result: Json | None = self._request("DELETE", self._app_path(project, env, app))
        return result

    def scale(self, project: str, env: str, app: str, replicas: int, version: int | None = None) -> Json:
        body: Json = {"replicas": replicas}
        if version is not None:
            body["version"] = version
        result: Json = self._request("PUT", self._app_path(project, env, app) + "/replicas", json=body)
        return result

    def get_settings(self, project: str, env: str, app: str) -> Json:
        """``{"settings": {...}, "version": N}``."""
        result: Json = self._request("GET", self._app_path(project, env, app) + "/settings")
        return result

    def update_settings(
        self, project: str, env: str, app: str, settings: Json, version: int | None = None
    ) -> Json:
        """PATCH a partial settings document (null removes a key); returns the new release's Deployment."""
        body: Json = {"settings": settings}
        if version is not None:
            body["version"] = version
        result: Json = self._request("PATCH", self._app_path(project, env, app) + "/settings", json=body)
        return result

    def list_releases(self, project: str, env: str, app: str) -> list[Json]:
        return self._items(self._app_path(project, env, app) + "/releases")

    def list_images(self, project: str, env: str, app: str) -> list[Json]:
        """The app's images in the registry, newest first, with the releases that refer to each."""
        return self._items(self._app_path(project, env, app) + "/images")

    def get_release(self, project: str, env: str, app: str, number: int) -> Json:
        path = self._app_path(project, env, app) + f"/releases/{int(number)}"
        result: Json = self._request("GET", path)
        return result

    def rollback(self, project: str, env: str, app: str, to: int | None = None) -> Json:
        """Roll back to release ``to`` (None: the release before the current one); returns a Deployment."""
        result: Json = self._request("POST", self._app_path(project, env, app) + "/rollback", json={"to": to})
        return result

    def list_rollouts(self, project: str, env: str, app: str) -> list[Json]:
        return self._items(self._app_path(project, env, app) + "/rollouts")

    def add_cluster(
        self,
        name: str,
        kubeconfig: Json,
        context: str | None = None,
        base_domain: str | None = None,
        registry: str | None = None,
    ) -> Json:
        """Register a cluster; the server contacts it before storing anything."""
        body = {"name": name, "kubeconfig": kubeconfig, "context": context, "base_domain": base_domain}
        if registry is not None:
            body["registry"] = registry
        result: Json = self._request("POST", "/clusters", json=body)
        return result

    def set_cluster_registry(self, name: str, registry: str | None) -> Json:
        """The registry address the cluster's nodes pull from (None: the platform registry's own)."""
        result: Json = self._request("PATCH", f"/clusters/{_segment(name)}", json={"registry": registry})
        return result

    def list_clusters(self) -> list[Json]:
        return self._items("/clusters")

    def remove_cluster(self, name: str) -> None:
        self._request("DELETE", f"/clusters/{_segment(name)}")

    def node_events(self, cluster: str, limit: int = 100) -> list[Json]:
        """What the node autoscaler did on a cluster (add / remove / blocked), newest first."""
        return self._items(f"/clusters/{_segment(cluster)}/node-events", {"limit": limit})

    def render(
        self, project: str, env: str, app: str, release: int | None = None, *, show_secrets: bool = False
    ) -> list[Json]:
        """The manifests (Kubernetes) or process specs (local) of a release, as the target would get them."""
        params: dict[str, Any] = {"show_secrets": show_secrets}
        if release is not None:
            params["release"] = release
        body = self._request("GET", self._app_path(project, env, app) + "/render", params=params)
        items: list[Json] = body["items"]
        return items

    def list_instances(self, project: str, env: str, app: str) -> list[Json]:
        """The app's instances as the runtime last reported them."""
        return self._items(self._app_path(project, env, app) + "/instances")

    def get_rollout(self, project: str, env: str, app: str, rollout_id: str | int) -> Json:
        path = self._app_path(project, env, app) + f"/rollouts/{_segment(rollout_id)}"
        result: Json = self._request("GET", path)
        return result

    def wait_for_rollout(
        self,
        project: str,
        env: str,
        app: str,
        rollout_id: str | int,
        *,
        timeout: float | None = 300.0,
        interval: float = 1.0,
        on_progress: ProgressCallback | None = None,
        idle_timeout: float | None = None,
    ) -> Json:
        """Poll until the rollout is succeeded, failed or superseded and return it.

        ``on_progress`` gets every polled state. Raises WaitTimeout when ``timeout`` seconds pass first
        (None: no overall limit), or when the rollout's state and message stayed the same for
        ``idle_timeout`` seconds (None: no such limit).
        """
        start = self._clock()
        changed_at, last = start, None
        while True:
            rollout = self.get_rollout(project, env, app, rollout_id)
            if on_progress is not None:
                on_progress(rollout)
            if rollout.get("state") in TERMINAL_ROLLOUT_STATES:
                return rollout
            now = self._clock()
            seen = (rollout.get("state"), rollout.get("message"))
            if seen != last:
                changed_at, last = now, seen
            limits = [start + timeout] if timeout is not None else []
            if idle_timeout is not None:
                limits.append(changed_at + idle_timeout)
            remaining = min(limits) - now if limits else interval
            if remaining <= 0:
                idle = idle_timeout is not None and now >= changed_at + idle_timeout
                raise WaitTimeout(rollout, now - start, idle_for=now - changed_at if idle else None)
            self._sleep(min(interval, remaining))

    # -- artifacts -------------------------------------------------------------------------------

    def upload_artifact(self, source_dir: Path) -> str:
        """Archive ``source_dir`` deterministically, upload it and return its digest (``sha256:…``)."""
        return self.upload_source(pack_source(source_dir))

    def upload_source(self, archive: SourceArchive) -> str:
        """Upload an archive ``pack_source`` made (which also says what it left out); its digest."""
        result = self._request(
            "POST",
            "/artifacts",
            content=archive.data,
            headers={"Content-Type": "application/gzip"},
            timeout=max(self._http.timeout.read or 0.0, 300.0),
        )
        return str(result["digest"])

    # -- audit and tokens ------------------------------------------------------------------------

    def list_audit(
        self,
        project: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Json]:
        params = {
            "project": project,
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "limit": limit,
            "before_id": before_id,
        }
        return self._items("/audit", {key: value for key, value in params.items() if value is not None})

    def create_token(
        self,
        name: str,
        scopes: list[str],
        expires_in_seconds: int | None = None,
        principal: str | None = None,
    ) -> Json:
        """Create a token; the secret (``token``) is in this response only."""
        body: Json = {"name": name, "scopes": list(scopes), "expires_in_seconds": expires_in_seconds}
        if principal is not None:
            body["principal"] = principal
        result: Json = self._request("POST", "/tokens", json=body)
        return result

    def list_tokens(self) -> list[Json]:
        return self._items("/tokens")

    def revoke_token(self, token_id: str) -> None:
        self._request("DELETE", f"/tokens/{_segment(token_id)}")

    # -- logs ------------------------------------------------------------------------------------

    def get_logs(
        self,
        project: str,
        env: str,
        app: str,
        *,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
        where: list[str] | None = None,
    ) -> Json:
        """One page of an app's logs: ``{"items": [...oldest first], "next_after_id": N}``.

        Without ``after_id`` the newest ``limit`` records, with it the first ``limit`` after it.
        ``since``/``until``: a duration before now (``10m``) or RFC 3339; ``grep``: literal substring;
        ``where``: field filters on JSON lines (``level=error``, ``status>=500``), all must hold.
        """
        params = {
            "since": since,
            "until": until,
            "grep": grep,
            "instance": instance,
            "stream": stream,
            "after_id": after_id,
            "limit": limit,
            "where": where or None,
        }
        result: Json = self._request(
            "GET",
            self._app_path(project, env, app) + "/logs",
            params={key: value for key, value in params.items() if value is not None},
        )
        return result

    def follow_logs(
        self,
        project: str,
        env: str,
        app: str,
        *,
        since: str | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
        interval: float = 1.0,
        where: list[str] | None = None,
    ) -> Iterator[Json]:
        """Yield an app's log records as they arrive, until the caller stops iterating.

        First the newest ``limit`` records (or those after ``after_id``; ``since`` only bounds this first
        page), then whatever comes next, polling every ``interval`` seconds while nothing new arrives.
        """
        filters: Json = {"grep": grep, "instance": instance, "stream": stream, "where": where}
        page = self.get_logs(project, env, app, since=since, after_id=after_id, limit=limit, **filters)
        while True:
            yield from page["items"]
            if len(page["items"]) < FOLLOW_PAGE:
                self._sleep(interval)
            cursor = int(page["next_after_id"])
            page = self.get_logs(project, env, app, after_id=cursor, limit=FOLLOW_PAGE, **filters)

    # -- config and secrets ----------------------------------------------------------------------

    @staticmethod
    def _env_path(project: str, env: str) -> str:
        return f"/projects/{_segment(project)}/environments/{_segment(env)}"

    def get_config(self, project: str, env: str, app: str | None = None) -> Json:
        """``{"vars": {...}, "version": N}`` (+ ``inherited`` at app level)."""
        params = {"app": app} if app else None
        result: Json = self._request("GET", self._env_path(project, env) + "/config", params=params)
        return result

    def update_config(
        self,
        project: str,
        env: str,
        app: str | None = None,
        *,
        set: dict[str, str] | None = None,
        unset: list[str] | None = None,
        version: int | None = None,
    ) -> Json:
        """Set and unset variables; ``releases`` in the answer names the releases the change made."""
        body: Json = {"set": set or {}, "unset": unset or []}
        if version is not None:
            body["version"] = version
        params = {"app": app} if app else None
        result: Json = self._request(
            "PATCH", self._env_path(project, env) + "/config", json=body, params=params
        )
        return result

    def list_secrets(self, project: str, env: str, app: str | None = None) -> list[Json]:
        """Names, scopes, versions, who/when — never values."""
        return self._items(self._env_path(project, env) + "/secrets", {"app": app} if app else None)

    def set_secret(self, project: str, env: str, name: str, value: str, app: str | None = None) -> Json:
        """Store a new version of a secret (sent in the body, never in the URL); returns metadata only."""
        params = {"app": app} if app else None
        path = self._env_path(project, env) + f"/secrets/{_segment(name)}"
        result: Json = self._request("PUT", path, json={"value": value}, params=params)
        return result

    def unset_secret(self, project: str, env: str, name: str, app: str | None = None) -> Json:
        params = {"app": app} if app else None
        path = self._env_path(project, env) + f"/secrets/{_segment(name)}"
        result: Json = self._request("DELETE", path, params=params)
        return result

    def rotate_secret_key(self) -> Json:
        """Re-encrypt every secret under a new key and retire the old one (admin)."""
        result: Json = self._request("POST", "/secrets/rotate-key")
        return result

    def reveal_secret(self, project: str, env: str, name: str, app: str | None = None) -> Json:
        """``{"name", "version", "value"}``: the current value (maintainers and above; audited)."""
        params = {"app": app} if app else None
        path = self._env_path(project, env) + f"/secrets/{_segment(name)}/reveal"
        result: Json = self._request("POST", path, params=params)
        return result

    # -- alerts ----------------------------------------------------------------------------------

    @staticmethod
    def _alerts_path(project: str | None) -> str:
        """Project-scoped alert resources, or the global ones (platform admins) when project is None."""
        return f"/projects/{_segment(project)}/alerts" if project else "/alerts"

    @staticmethod
    def _scope_params(env: str | None, app: str | None) -> dict[str, Any]:
        return {k: v for k, v in (("env", env), ("app", app)) if v}

    def list_alert_rules(
        self, project: str | None, env: str | None = None, app: str | None = None
    ) -> list[Json]:
        """Rules and default-rule tunings stored at exactly this scope."""
        return self._items(self._alerts_path(project) + "/rules", self._scope_params(env, app))

    def effective_alert_rules(self, project: str, env: str, app: str) -> list[Json]:
        """Every rule the evaluator runs for the app, after each scope's tuning."""
        return self._items(self._app_path(project, env, app) + "/alert-rules")

    def put_alert_rule(
        self, project: str | None, name: str, rule: Json, env: str | None = None, app: str | None = None,
        version: int | None = None,
    ) -> Json:  # fmt: skip
        params = self._scope_params(env, app) | ({"version": version} if version is not None else {})
        path = self._alerts_path(project) + f"/rules/{_segment(name)}"
        result: Json = self._request("PUT", path, json=rule, params=params)
        return result

    def delete_alert_rule(
        self, project: str | None, name: str, env: str | None = None, app: str | None = None
    ) -> None:
        path = self._alerts_path(project) + f"/rules/{_segment(name)}"
        self._request("DELETE", path, params=self._scope_params(env, app))

    def list_alerts(self, project: str | None, env: str | None = None, app: str | None = None) -> list[Json]:
        """Pending and firing alerts (project None: the global ones, e.g. the platform's expiry rules)."""
        return self._items(self._alerts_path(project), self._scope_params(env, app))

    def alert_history(
        self, project: str, env: str | None = None, app: str | None = None, kind: str | None = None,
        limit: int = 100,
    ) -> list[Json]:  # fmt: skip
        params = self._scope_params(env, app) | {"limit": limit} | ({"kind": kind} if kind else {})
        return self._items(self._alerts_path(project) + "/history", params)

    def app_events(self, project: str, env: str, app: str, limit: int = 100) -> list[Json]:
        """The app's timeline: alerts fired and resolved, healing actions taken (newest first)."""
        return self._items(self._app_path(project, env, app) + "/events", {"limit": limit})

    def list_alert_receivers(self, project: str | None) -> list[Json]:
        return self._items(self._alerts_path(project) + "/receivers")

    def put_alert_receiver(
        self, project: str | None, name: str, kind: str, config: Json, route: Json | None = None
    ) -> Json:
        body = {"kind": kind, "config": config, "route": route}
        result: Json = self._request(
            "PUT", self._alerts_path(project) + f"/receivers/{_segment(name)}", json=body
        )
        return result

    def delete_alert_receiver(self, project: str | None, name: str) -> None:
        self._request("DELETE", self._alerts_path(project) + f"/receivers/{_segment(name)}")

    def create_silence(
        self, project: str | None, matchers: list[Any], duration: str | None = None, comment: str = "",
        ends_at: str | None = None,
    ) -> Json:  # fmt: skip
        body = {"matchers": matchers, "duration": duration, "comment": comment, "ends_at": ends_at}
        result: Json = self._request("POST", self._alerts_path(project) + "/silences", json=body)
        return result

    def list_silences(self, project: str | None, expired: bool = False) -> list[Json]:
        return self._items(self._alerts_path(project) + "/silences", {"expired": expired})

    def expire_silence(self, project: str | None, silence_id: int) -> Json:
        result: Json = self._request("DELETE", self._alerts_path(project) + f"/silences/{int(silence_id)}")
        return result

    # -- metrics ---------------------------------------------------------------------------------

    def _prometheus(self, path: str, params: dict[str, Any]) -> Json:
        """Prometheus-style endpoints answer errors as {"status": "error", "errorType", "error"}."""
        response = self._send("GET", path, params={k: v for k, v in params.items() if v is not None})
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and isinstance(body.get("data"), dict):
            data: Json = body["data"]
            return data
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            problems = [FieldProblem("query", body["error"])] if body.get("errorType") == "bad_data" else []
            code = str(body.get("errorType") or "error")
            request_id = response.headers.get("X-Request-Id")
            raise ApiError(response.status_code, code, body["error"], problems, request_id=request_id)
        raise _error(response)

    def metrics_query(self, query: str, time: float | None = None) -> Json:
        """PromQL at one time; the Prometheus API's ``data`` object (resultType, result)."""
        return self._prometheus("/metrics/query", {"query": query, "time": time})

    def metrics_query_range(self, query: str, start: float, end: float, step: float) -> Json:
        params = {"query": query, "start": start, "end": end, "step": step}
        return self._prometheus("/metrics/query_range", params)

    def app_metrics(
        self, project: str, env: str, app: str, window: str = "1h", end: float | None = None
    ) -> Json:
        """Chart series of one app (request rate, error rate, latency p50/p99, CPU, memory)."""
        path = self._app_path(project, env, app) + "/metrics"
        params: dict[str, Any] = {"window": window} if end is None else {"window": window, "end": end}
        result: Json = self._request("GET", path, params=params)
        return result

    # -- log export ------------------------------------------------------------------------------

    def export_logs(
        self,
        project: str,
        env: str,
        app: str,
        *,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        where: list[str] | None = None,
    ) -> Iterator[Json]:
        """Every matching log record of an app, oldest first, streamed as the server sends them (JSON
        lines) — for shipping to a collector. Same filters as ``get_logs``."""
        given = {"since": since, "until": until, "grep": grep, "instance": instance, "stream": stream}
        params: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if where:
            params["where"] = where
        path = self._app_path(project, env, app) + "/logs/export"
        try:
            with self._http.stream("GET", path, params=params, timeout=httpx.Timeout(30.0, read=None)) as r:
                if not r.is_success:
                    r.read()
                    raise _error(r)
                for line in r.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(self.url, _connect_reason(exc)) from exc
        except httpx.TransportError as exc:
            message = f"Could not talk to the Yunzhou server at {self.url}: {exc}"
            raise ApiError(0, "transport", message) from exc

    def autoscale_decisions(self, project: str, env: str, app: str, limit: int = 100) -> list[Json]:
        """An app's autoscaler decisions, newest first."""
        return self._items(self._app_path(project, env, app) + "/autoscaling/decisions", {"limit": limit})

    def create_scale_hook(
        self, project: str, env: str, app: str, action: str, *, step: int = 1, replicas: int | None = None,
        min_interval_seconds: int = 10,
    ) -> Json:  # fmt: skip
        """A new scale hook; the answer's ``path`` (with the secret) is shown only this once."""
        body = {"action": action, "step": step, "replicas": replicas}
        body["min_interval_seconds"] = min_interval_seconds
        path = self._app_path(project, env, app) + "/scale-hooks"
        result: Json = self._request("POST", path, json=body)
        return result

    def list_scale_hooks(self, project: str, env: str, app: str) -> list[Json]:
        return self._items(self._app_path(project, env, app) + "/scale-hooks")

    def revoke_scale_hook(self, project: str, env: str, app: str, hook_id: str) -> Json:
        path = self._app_path(project, env, app) + f"/scale-hooks/{_segment(hook_id)}"
        result: Json = self._request("DELETE", path)
        return result

    def rollout_command(self, project: str, env: str, app: str, command: str) -> Json:
        """``promote`` or ``abort`` the canary/blue-green rollout in progress; returns the rollout."""
        path = self._app_path(project, env, app) + f"/rollout/{_segment(command)}"
        result: Json = self._request("POST", path)
        return result

    def get_preferences(self) -> Json:
        """The caller's own preferences, e.g. ``{"language": "zh-CN"}`` (``None`` when never chosen)."""
        result: Json = self._request("GET", "/whoami/preferences")
        return result

    def update_preferences(self, **fields: Any) -> Json:
        """Set some of the caller's preferences (``language="en"``); returns all of them."""
        result: Json = self._request("PUT", "/whoami/preferences", json=fields)
        return result


def _json_or_none(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ApiError(
            response.status_code,
            "bad_response",
            f"The server answered {response.request.method} {response.request.url.path} "
            "with a body that is not JSON",
            request_id=response.headers.get("X-Request-Id"),
        ) from exc


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    request_id = response.headers.get("X-Request-Id")
    error = error_from_response(response.status_code, body, response.text, request_id)
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None:
        try:
            error.retry_after = max(0.0, float(retry_after))
        except ValueError:
            error.retry_after = None
    return error


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    if "refused" in text or not text:
        return "connection refused"
    return str(exc)
