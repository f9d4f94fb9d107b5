"""The build half of the contract fake: a build runs to its outcome at once (``build_outcome``) and its
log is served as a page or as the followed NDJSON stream."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.client.fake_types import NOW, Caller, Json, Problem, invalid

BUILD_LOG = "Collecting flask\nSuccessfully installed flask-3.0.0\n"
FAILED_LOG = "Collecting nosuchpkg\nERROR: No matching distribution found for nosuchpkg\n"
DIGEST = "sha256:" + "ab" * 32


class FakeBuilds:
    """Mixed into FakeApi, whose deploy handler makes the build's release."""

    artifacts: dict[str, bytes]
    releases: dict[tuple[str, str, str], list[Json]]
    builds: dict[str, Json]
    build_logs: dict[str, str]
    build_outcome: str  # succeeded | failed | running (never ends: its follow stream stops short)

    def _env(self, caller: Caller, project: str, env: str) -> Json:
        raise NotImplementedError

    def deploy(self, caller: Caller, _req: Any, body: Json, project: str, env: str) -> tuple[int, Any]:
        raise NotImplementedError

    def start_build(self, caller: Caller, _req: Any, body: Json, project: str, env: str) -> tuple[int, Any]:
        self._env(caller, project, env)
        if body.get("artifact") not in self.artifacts:
            raise invalid("artifact", "no such artifact")
        if body.get("stack") not in (None, "python", "node", "java", "tomcat", "static"):
            raise invalid(
                "stack", f"unknown stack {body['stack']!r}; supported: python, node, java, tomcat, static"
            )
        app = (body.get("score") or {}).get("metadata", {}).get("name") or body.get("app")
        build_id = f"b{len(self.builds) + 1:012x}"
        build = {
            "id": build_id, "project": project, "env": env, "app": app, "address": f"{project}/{env}/{app}",
            "state": self.build_outcome, "stack": body.get("stack") or "python", "error": "", "release": None,
            "image": None, "deps_cached": False, "progress": {"step": "done", "fraction": 1.0},
            "created_by": caller.principal, "created_at": NOW, "finished_at": NOW,
        }  # fmt: skip
        self.build_logs[build_id] = BUILD_LOG
        if self.build_outcome == "failed":
            self.build_logs[build_id] = FAILED_LOG
            build["error"] = (
                "pip install failed (exit 1): ERROR: No matching distribution found for nosuchpkg"
            )
        elif self.build_outcome == "succeeded" and body.get("score") is not None:
            _, deployment = self.deploy(caller, None, body, project, env)
            release = deployment["release"]
            release["image"] = build["image"] = f"{project}/{app}@{DIGEST}"
            build["release"] = release["number"]
        self.builds[build_id] = build
        return 202, {**build, "state": "queued"}

    def list_builds(
        self, caller: Caller, request: Any, _body: Any, project: str, env: str
    ) -> tuple[int, Any]:
        self._env(caller, project, env)
        app = request.url.params.get("app")
        found = [b for b in self.builds.values() if (b["project"], b["env"]) == (project, env)]
        return 200, {"items": [b for b in reversed(found) if app is None or b["app"] == app]}

    def _build(self, caller: Caller, build_id: str) -> Json:
        build = self.builds.get(build_id)
        if build is None:
            raise Problem(404, "not_found", f"build {build_id!r} not found")
        self._env(caller, build["project"], build["env"])
        return build

    def get_build(self, caller: Caller, _req: Any, _body: Any, build_id: str) -> tuple[int, Any]:
        return 200, self._build(caller, build_id)

    def cancel_build(self, caller: Caller, _req: Any, _body: Any, build_id: str) -> tuple[int, Any]:
        build = self._build(caller, build_id)
        if build["state"] == "running":
            build["cancel_requested"] = True
        return 200, build

    def build_log(self, caller: Caller, request: Any, _body: Any, build_id: str) -> tuple[int, Any]:
        build = self._build(caller, build_id)
        data = self.build_logs[build_id].encode()
        offset = int(request.url.params.get("offset", 0))
        done = build["state"] != "running"
        if request.url.params.get("follow") == "true":
            chunk = {"offset": offset, "text": data[offset:].decode(), "next_offset": len(data)}
            lines = [chunk] if data[offset:] else []
            if done:
                end = {
                    "done": True,
                    "state": build["state"],
                    "error": build["error"],
                    "release": build["release"],
                }
                lines.append({**end, "next_offset": len(data)})
            return 200, "".join(json.dumps(line) + "\n" for line in lines).encode()
        text = data[offset:].decode()
        return 200, {
            "text": text,
            "offset": offset,
            "next_offset": len(data),
            "state": build["state"],
            "done": done,
        }
