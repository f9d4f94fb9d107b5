"""The app half of the contract fake: deployments, apps, settings, releases and rollouts."""

from __future__ import annotations

from typing import Any

from tests.unit.client.fake_types import LABEL, NOW, Caller, Json, Problem, invalid, merge


class FakeApps:
    """Mixed into FakeApi, whose state (apps, releases, rollouts, …) these handlers use."""

    apps: dict[tuple[str, str, str], Json]
    releases: dict[tuple[str, str, str], list[Json]]
    rollouts: dict[tuple[str, str, str], list[Json]]
    artifacts: dict[str, bytes]
    rollout_outcome: str

    def _env(self, caller: Caller, project: str, env: str) -> Json:
        raise NotImplementedError

    def _next_id(self) -> int:
        raise NotImplementedError

    def _audit(self, caller: Caller, action: str, target: str, project: str | None = None) -> None:
        raise NotImplementedError

    def _app(self, caller: Caller, project: str, env: str, app: str) -> Json:
        self._env(caller, project, env)
        found = self.apps.get((project, env, app))
        if found is None:
            raise Problem(404, "not_found", f"app {project}/{env}/{app} not found")
        return found

    def _start_rollout(self, key: tuple[str, str, str], kind: str, to_release: int) -> Json:
        app = self.apps[key]
        rollout = {
            "id": f"ro-{self._next_id()}",
            "app": app["address"],
            "kind": kind,
            "from_release": app["current_release"],
            "to_release": to_release,
            "strategy": "rolling",
            "state": "pending",
            "message": "",
            "created_at": NOW,
            "updated_at": NOW,
        }
        self.rollouts.setdefault(key, []).insert(0, rollout)
        app["rollout"] = rollout
        app["status"] = "progressing"
        return rollout

    def _release(
        self, caller: Caller, key: tuple[str, str, str], score: Json, settings: Json, **extra: Any
    ) -> Json:
        history = self.releases.setdefault(key, [])
        release = {
            "number": len(history) + 1,
            "app": "/".join(key),
            "created_at": NOW,
            "created_by": caller.principal,
            "cause": extra.get("cause", "deploy"),
            "artifact": extra.get("artifact"),
            "image": None,
            "score": score,
            "settings": settings,
            "changes": extra.get("changes", []),
        }
        history.insert(0, release)
        app = self.apps[key]
        effective = merge(settings, (settings.get("environments") or {}).get(key[1]) or {})
        app["desired_release"] = release["number"]
        app["replicas"] = effective.get("replicas", 1)
        app["version"] += 1
        rollout = self._start_rollout(key, extra.get("kind", "deploy"), release["number"])
        return {"app": app, "release": release, "rollout": rollout}

    def deploy(self, caller: Caller, _req: Any, body: Json, project: str, env: str) -> tuple[int, Any]:
        self._env(caller, project, env)
        score = body.get("score")
        problems = []
        name = (score.get("metadata") or {}).get("name") if isinstance(score, dict) else None
        if not isinstance(name, str) or not LABEL.match(name):
            problems.append({"path": "metadata.name", "message": "required: a DNS label"})
        containers = score.get("containers") if isinstance(score, dict) else None
        if not isinstance(containers, dict) or not containers:
            problems.append({"path": "containers", "message": "at least one container is required"})
        else:
            for cname, container in containers.items():
                if not isinstance(container, dict) or not container.get("image"):
                    problems.append({"path": f"containers.{cname}.image", "message": "required"})
        if problems:
            raise Problem(422, "invalid", "Score file is invalid", problems)
        assert isinstance(name, str)
        assert isinstance(score, dict)
        if body.get("artifact") is not None and body["artifact"] not in self.artifacts:
            raise invalid("artifact", "no such artifact")
        key = (project, env, name)
        if key not in self.apps:
            self.apps[key] = {
                "project": project,
                "env": env,
                "name": name,
                "address": "/".join(key),
                "current_release": None,
                "desired_release": 0,
                "replicas": 1,
                "ready_replicas": 0,
                "status": "pending",
                "route": f"http://{name}.{env}.{project}.localhost:8080",
                "conditions": [],
                "rollout": None,
                "version": 0,
            }
        settings = body.get("settings")
        if settings is None:
            settings = self.releases[key][0]["settings"] if self.releases.get(key) else {}
        deployment = self._release(caller, key, score, settings, artifact=body.get("artifact"))
        self._audit(caller, "deploy", "/".join(key), project)
        return 201, deployment

    def list_apps(self, caller: Caller, _req: Any, _body: Any, project: str, env: str) -> tuple[int, Any]:
        self._env(caller, project, env)
        return 200, {"items": [v for k, v in sorted(self.apps.items()) if k[:2] == (project, env)]}

    def get_app(self, caller: Caller, _req: Any, _body: Any, *key: str) -> tuple[int, Any]:
        return 200, self._app(caller, *key)

    def remove_app(self, caller: Caller, _req: Any, _body: Any, *key: str) -> tuple[int, Any]:
        app = self._app(caller, *key)
        app["status"] = "removing"
        return 202, None

    def scale(self, caller: Caller, _req: Any, body: Json, *key: str) -> tuple[int, Any]:
        app = self._app(caller, *key)
        replicas = body.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid("replicas", "must be an integer 0-1000")
        if body.get("version") is not None and body["version"] != app["version"]:
            raise Problem(409, "conflict", f"app is at version {app['version']}, not {body['version']}")
        app["replicas"] = replicas
        app["version"] += 1
        self._start_rollout((key[0], key[1], key[2]), "scale", app["desired_release"])
        return 200, app

    def get_settings(self, caller: Caller, _req: Any, _body: Any, *key: str) -> tuple[int, Any]:
        app = self._app(caller, *key)
        current = self.releases[(key[0], key[1], key[2])][0]
        return 200, {"settings": current["settings"], "version": app["version"]}

    def patch_settings(self, caller: Caller, _req: Any, body: Json, *key: str) -> tuple[int, Any]:
        self._app(caller, *key)
        app_key = (key[0], key[1], key[2])
        current = self.releases[app_key][0]
        merged = merge(current["settings"], body.get("settings") or {})
        deployment = self._release(
            caller, app_key, current["score"], merged, cause="settings", kind="settings"
        )
        return 201, deployment

    def list_releases(self, caller: Caller, _req: Any, _body: Any, *key: str) -> tuple[int, Any]:
        self._app(caller, *key)
        return 200, {"items": self.releases[(key[0], key[1], key[2])]}

    def get_release(self, caller: Caller, _req: Any, _body: Any, *parts: str) -> tuple[int, Any]:
        self._app(caller, *parts[:3])
        for release in self.releases[(parts[0], parts[1], parts[2])]:
            if release["number"] == int(parts[3]):
                return 200, release
        raise Problem(404, "not_found", f"release {parts[3]} not found")

    def rollback(self, caller: Caller, _req: Any, body: Json, *key: str) -> tuple[int, Any]:
        self._app(caller, *key)
        app_key = (key[0], key[1], key[2])
        history = self.releases[app_key]
        to = body.get("to")
        if to is None:
            if len(history) < 2:
                raise Problem(409, "conflict", "there is no earlier release to roll back to")
            to = history[1]["number"]
        source = next((r for r in history if r["number"] == to), None)
        if source is None:
            raise invalid("to", f"release {to} does not exist")
        deployment = self._release(
            caller, app_key, source["score"], source["settings"], cause=f"rollback to {to}", kind="rollback"
        )
        return 201, deployment

    def list_rollouts(self, caller: Caller, _req: Any, _body: Any, *key: str) -> tuple[int, Any]:
        self._app(caller, *key)
        return 200, {"items": self.rollouts.get((key[0], key[1], key[2]), [])}

    def get_rollout(self, caller: Caller, _req: Any, _body: Any, *parts: str) -> tuple[int, Any]:
        self._app(caller, *parts[:3])
        app_key = (parts[0], parts[1], parts[2])
        for rollout in self.rollouts.get(app_key, []):
            if rollout["id"] == parts[3]:
                self._advance(app_key, rollout)
                return 200, rollout
        raise Problem(404, "not_found", f"rollout {parts[3]} not found")

    def _advance(self, key: tuple[str, str, str], rollout: Json) -> None:
        """Each poll moves a rollout one step: pending → progressing → ``rollout_outcome``."""
        if rollout["state"] == "pending":
            rollout["state"], rollout["message"] = "progressing", "1 of 2 instances ready"
        elif rollout["state"] == "progressing" and self.rollout_outcome != "progressing":
            rollout["state"] = self.rollout_outcome
            rollout["message"] = (
                "readiness probe failed: connection refused" if self.rollout_outcome == "failed" else ""
            )
            app = self.apps[key]
            if self.rollout_outcome == "succeeded":
                app["current_release"], app["status"] = rollout["to_release"], "running"
                app["ready_replicas"] = app["replicas"]
