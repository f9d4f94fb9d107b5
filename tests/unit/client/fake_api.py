"""A small in-memory fake of the v1 API contract (docs/api.md), served through httpx.MockTransport.

It is a unit-test double for the client and the CLI only: just enough behaviour (auth, membership,
versions, releases, rollouts that progress when polled, audit) to exercise them. The real server is
tested against the real client elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from tests.unit.client.fake_apps import FakeApps
from tests.unit.client.fake_builds import FakeBuilds
from tests.unit.client.fake_types import ADMIN_TOKEN, LABEL, NOW, Caller, Json, Problem, invalid

__all__ = ["ADMIN_TOKEN", "FakeApi"]


@dataclass
class FakeApi(FakeApps, FakeBuilds):
    now: float = 0.0
    build_outcome: str = "succeeded"  # where a started build ends up (fake_builds.py)
    builds: dict[str, Json] = field(default_factory=dict)
    build_logs: dict[str, str] = field(default_factory=dict)
    rollout_outcome: str = "succeeded"  # where a polled rollout ends up
    unavailable_for: int = 0  # answer this many next requests with 503
    tokens: dict[str, Json] = field(default_factory=dict)
    projects: dict[str, Json] = field(default_factory=dict)
    members: dict[str, dict[str, str]] = field(default_factory=dict)
    envs: dict[tuple[str, str], Json] = field(default_factory=dict)
    apps: dict[tuple[str, str, str], Json] = field(default_factory=dict)
    releases: dict[tuple[str, str, str], list[Json]] = field(default_factory=dict)
    rollouts: dict[tuple[str, str, str], list[Json]] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    audit: list[Json] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.tokens[ADMIN_TOKEN] = self._token_record("tok-admin", "admin", "admin", ["admin"])
        self.transport = httpx.MockTransport(self.handle)

    # -- test helpers ----------------------------------------------------------------------------

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def bodies(self, method: str, path_suffix: str) -> list[Any]:
        return [
            json.loads(r.content) if r.content else None
            for r in self.requests
            if r.method == method and r.url.path.endswith(path_suffix)
        ]

    def _next_id(self) -> int:
        self._counter += 1
        return self._counter

    def _token_record(self, token_id: str, name: str, principal: str, scopes: list[str]) -> Json:
        return {
            "id": token_id,
            "name": name,
            "principal": principal,
            "scopes": scopes,
            "created_at": NOW,
            "expires_at": None,
            "revoked": False,
            "last_used_at": None,
        }

    # -- dispatch --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request_id = f"req-{len(self.requests)}"
        headers = {"X-Request-Id": request_id}
        try:
            if self.unavailable_for > 0:
                self.unavailable_for -= 1
                headers["Retry-After"] = "2"
                raise Problem(503, "temporary", "the store is busy")
            status, body = self._route(request)
        except Problem as exc:
            error = {
                "code": exc.code,
                "message": exc.message,
                "problems": exc.problems,
                "request_id": request_id,
            }
            return httpx.Response(exc.status, json={"error": error}, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        if isinstance(body, bytes):  # a followed build log (NDJSON)
            headers["Content-Type"] = "application/x-ndjson"
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    def _route(self, request: httpx.Request) -> tuple[int, Any]:
        # Match on the raw (still escaped) path so that an escaped "/" stays inside its segment.
        path = request.url.raw_path.decode().split("?")[0].removeprefix("/api/v1")
        if path == "/healthz":
            return 200, {"status": "ok", "version": "0.1.0"}
        caller = self._authenticate(request)
        needed = "read" if request.method == "GET" else "write"
        if not caller.admin and needed not in caller.scopes:
            raise Problem(403, "forbidden", f"token scope {needed} is required")
        body = (
            json.loads(request.content)
            if request.content and "json" in request.headers.get("content-type", "")
            else None
        )
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                segments = [unquote(segment) for segment in match.groups()]
                return handler(caller, request, body, *segments)
        raise Problem(404, "not_found", f"no route {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        p = r"/projects/([^/]+)"
        e = p + r"/environments/([^/]+)"
        a = e + r"/apps/([^/]+)"
        return [
            ("GET", "/whoami", self.whoami),
            ("POST", "/projects", self.create_project),
            ("GET", "/projects", self.list_projects),
            ("GET", p, self.get_project),
            ("DELETE", p, self.delete_project),
            ("GET", p + "/members", self.list_members),
            ("PUT", p + r"/members/([^/]+)", self.set_member),
            ("DELETE", p + r"/members/([^/]+)", self.remove_member),
            ("POST", p + "/environments", self.create_env),
            ("GET", p + "/environments", self.list_envs),
            ("GET", e, self.get_env),
            ("DELETE", e, self.delete_env),
            ("POST", e + "/deployments", self.deploy),
            ("GET", e + "/apps", self.list_apps),
            ("GET", a, self.get_app),
            ("DELETE", a, self.remove_app),
            ("PUT", a + "/replicas", self.scale),
            ("GET", a + "/settings", self.get_settings),
            ("PATCH", a + "/settings", self.patch_settings),
            ("GET", a + "/releases", self.list_releases),
            ("GET", a + r"/releases/(\d+)", self.get_release),
            ("POST", a + "/rollback", self.rollback),
            ("GET", a + "/rollouts", self.list_rollouts),
            ("GET", a + r"/rollouts/([^/]+)", self.get_rollout),
            ("POST", "/artifacts", self.upload_artifact),
            ("POST", e + "/builds", self.start_build),
            ("GET", e + "/builds", self.list_builds),
            ("GET", r"/builds/([^/]+)", self.get_build),
            ("GET", r"/builds/([^/]+)/logs", self.build_log),
            ("POST", r"/builds/([^/]+)/cancel", self.cancel_build),
            ("GET", "/audit", self.list_audit),
            ("POST", "/tokens", self.create_token),
            ("GET", "/tokens", self.list_tokens),
            ("DELETE", r"/tokens/([^/]+)", self.revoke_token),
        ]

    def _authenticate(self, request: httpx.Request) -> Caller:
        header = request.headers.get("authorization", "")
        record = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if record is None or record["revoked"]:
            raise Problem(401, "unauthenticated", "missing, unknown, revoked or expired token")
        return Caller(record["principal"], record["id"], list(record["scopes"]))

    def _audit(self, caller: Caller, action: str, target: str, project: str | None = None) -> None:
        event_id = len(self.audit) + 1
        self.audit.append(
            {
                "id": event_id,
                "time": NOW,
                "actor": caller.principal,
                "action": action,
                "target": target,
                "outcome": "success",
                "request_id": f"req-{len(self.requests)}",
                "detail": {"project": project},
            }
        )

    # -- projects --------------------------------------------------------------------------------

    def _project(self, caller: Caller, name: str) -> Json:
        project = self.projects.get(name)
        if project is None or not (caller.admin or caller.principal in self.members.get(name, {})):
            raise Problem(404, "not_found", f"project {name!r} not found")
        return project

    def whoami(self, caller: Caller, *_: Any) -> tuple[int, Any]:
        roles = {p: m[caller.principal] for p, m in self.members.items() if caller.principal in m}
        return 200, {
            "principal": caller.principal,
            "token_id": caller.token_id,
            "scopes": caller.scopes,
            "admin": caller.admin,
            "roles": roles,
        }

    def create_project(self, caller: Caller, _req: Any, body: Json) -> tuple[int, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not LABEL.match(name):
            raise invalid("name", "must be a DNS label")
        if name in self.projects:
            raise Problem(409, "conflict", f"project {name!r} already exists")
        self.projects[name] = {
            "name": name,
            "display_name": body.get("display_name") or name,
            "created_at": NOW,
            "version": 1,
        }
        self.members[name] = {caller.principal: "owner"}
        self._audit(caller, "project.create", name, name)
        return 201, self.projects[name]

    def list_projects(self, caller: Caller, *_: Any) -> tuple[int, Any]:
        visible = [
            p for n, p in sorted(self.projects.items()) if caller.admin or caller.principal in self.members[n]
        ]
        return 200, {"items": visible}

    def get_project(self, caller: Caller, _req: Any, _body: Any, name: str) -> tuple[int, Any]:
        return 200, self._project(caller, name)

    def delete_project(
        self, caller: Caller, request: httpx.Request, _body: Any, name: str
    ) -> tuple[int, Any]:
        project = self._project(caller, name)
        version = request.url.params.get("version")
        if version is not None and int(version) != project["version"]:
            raise Problem(
                409, "conflict", f"project {name!r} is at version {project['version']}, not {version}"
            )
        if any(p == name for p, _ in self.envs):
            raise Problem(409, "conflict", f"project {name!r} still has environments")
        del self.projects[name]
        self._audit(caller, "project.delete", name, name)
        return 204, None

    def list_members(self, caller: Caller, _req: Any, _body: Any, name: str) -> tuple[int, Any]:
        self._project(caller, name)
        items = [{"principal": who, "role": role} for who, role in sorted(self.members[name].items())]
        return 200, {"items": items}

    def set_member(self, caller: Caller, _req: Any, body: Json, name: str, principal: str) -> tuple[int, Any]:
        self._project(caller, name)
        if body.get("role") not in {"owner", "maintainer", "developer", "viewer"}:
            raise invalid("role", "must be owner, maintainer, developer or viewer")
        self.members[name][principal] = body["role"]
        self._audit(caller, "member.set", f"{name}/{principal}", name)
        return 200, {"principal": principal, "role": body["role"]}

    def remove_member(
        self, caller: Caller, _req: Any, _body: Any, name: str, principal: str
    ) -> tuple[int, Any]:
        self._project(caller, name)
        if self.members[name].pop(principal, None) is None:
            raise Problem(404, "not_found", f"{principal!r} is not a member of {name!r}")
        return 204, None

    # -- environments ----------------------------------------------------------------------------

    def _env(self, caller: Caller, project: str, env: str) -> Json:
        self._project(caller, project)
        found = self.envs.get((project, env))
        if found is None:
            raise Problem(404, "not_found", f"environment {project}/{env} not found")
        return found

    def create_env(self, caller: Caller, _req: Any, body: Json, project: str) -> tuple[int, Any]:
        self._project(caller, project)
        name = body.get("name", "")
        if (project, name) in self.envs:
            raise Problem(409, "conflict", f"environment {project}/{name} already exists")
        self.envs[(project, name)] = {
            "project": project,
            "name": name,
            "target": body.get("target", "local"),
            "namespace": body.get("namespace"),
            "created_at": NOW,
            "version": 1,
        }
        self._audit(caller, "environment.create", f"{project}/{name}", project)
        return 201, self.envs[(project, name)]

    def list_envs(self, caller: Caller, _req: Any, _body: Any, project: str) -> tuple[int, Any]:
        self._project(caller, project)
        return 200, {"items": [v for (p, _), v in sorted(self.envs.items()) if p == project]}

    def get_env(self, caller: Caller, _req: Any, _body: Any, project: str, env: str) -> tuple[int, Any]:
        return 200, self._env(caller, project, env)

    def delete_env(self, caller: Caller, _req: Any, _body: Any, project: str, env: str) -> tuple[int, Any]:
        self._env(caller, project, env)
        del self.envs[(project, env)]
        return 204, None

    # -- artifacts, audit, tokens ----------------------------------------------------------------

    def upload_artifact(self, caller: Caller, request: httpx.Request, *_: Any) -> tuple[int, Any]:
        if request.headers.get("content-type") != "application/gzip":
            raise invalid("body", "must be application/gzip")
        digest = "sha256:" + hashlib.sha256(request.content).hexdigest()
        self.artifacts[digest] = request.content
        return 201, {"digest": digest, "size": len(request.content)}

    def list_audit(self, caller: Caller, request: httpx.Request, *_: Any) -> tuple[int, Any]:
        params = request.url.params
        events = list(reversed(self.audit))
        for name in ("actor", "action", "outcome"):
            if params.get(name):
                events = [e for e in events if e[name] == params[name]]
        if params.get("project"):
            events = [e for e in events if e["detail"].get("project") == params["project"]]
        if params.get("before_id"):
            events = [e for e in events if e["id"] < int(params["before_id"])]
        return 200, {"items": events[: int(params.get("limit", 100))]}

    def create_token(self, caller: Caller, _req: Any, body: Json) -> tuple[int, Any]:
        scopes = body.get("scopes") or []
        bad = [s for s in scopes if s not in {"read", "write", "admin", "metrics"}]
        if bad or not scopes:
            raise invalid("scopes", "must be a non-empty list of read, write, admin, metrics")
        number = self._next_id()
        secret = f"yz_secret_{number}"
        principal = body.get("principal") or caller.principal
        record = self._token_record(f"tok-{number}", body["name"], principal, scopes)
        if body.get("expires_in_seconds") is not None:
            record["expires_at"] = f"2024-05-01T10:00:00Z+{body['expires_in_seconds']}s"
        self.tokens[secret] = record
        self._audit(caller, "token.create", record["id"])
        return 201, {
            **{k: record[k] for k in ("id", "name", "principal", "scopes", "expires_at")},
            "token": secret,
        }

    def list_tokens(self, caller: Caller, *_: Any) -> tuple[int, Any]:
        items = [t for t in self.tokens.values() if caller.admin or t["principal"] == caller.principal]
        return 200, {"items": items}

    def revoke_token(self, caller: Caller, _req: Any, _body: Any, token_id: str) -> tuple[int, Any]:
        for record in self.tokens.values():
            if record["id"] == token_id:
                record["revoked"] = True
                return 204, None
        raise Problem(404, "not_found", f"token {token_id!r} not found")
