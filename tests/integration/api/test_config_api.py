"""Config variables and secrets through the API, on SQLite and PostgreSQL: levels, releases per change,
422s that name the field and the fix, rollback to old secret versions, and no secret value in any answer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Api
from tests.helpers import score
from yunzhou.reconcile.config import resource_outputs
from yunzhou.store.models import App, AuditEvent, Environment, Release

ENV = "/api/v1/projects/shop/environments/dev"
CANARY = "canary-Zq8vX2-secret-value"


def _score(name: str = "orders") -> dict[str, Any]:
    doc = score(
        name,
        command=["python3", "app.py"],
        variables={"DEBUG": "${resources.env.DEBUG}", "API_KEY": "${resources.creds.API_KEY}"},
    )
    doc["resources"] = {"env": {"type": "environment"}, "creds": {"type": "secret"}}
    return doc


class Seen:
    """Every response body the test receives, to check that no secret value was ever in one."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.bodies: list[str] = []

    def __call__(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        r = self.api.http.request(method, path, headers=self.api.admin, **kwargs)
        self.bodies.append(r.text)
        assert r.status_code == status, r.text
        return r.json() if r.content else None


@pytest.fixture
def call(api: Api) -> Seen:
    seen = Seen(api)
    seen("POST", "/api/v1/projects", 201, json={"name": "shop"})
    seen("POST", "/api/v1/projects/shop/environments", 201, json={"name": "dev"})
    return seen


def _outputs(api: Api, app: str, number: int) -> dict[str, dict[str, str]]:
    with api.cp.ctx.db.transaction() as s:
        a = s.scalar(select(App).where(App.name == app))
        assert a is not None
        r = s.scalar(select(Release).where(Release.app_id == a.id, Release.number == number))
        assert r is not None
        return resource_outputs(s, api.cp.ctx.secret_box, a.environment_id, app, r.score, r.config)


def test_deploy_needs_the_referenced_keys_and_says_how_to_set_them(api: Api, call: Seen) -> None:
    body = call("POST", ENV + "/deployments", 422, json={"score": _score()})
    problems = {p["path"]: p["message"] for p in body["error"]["problems"]}
    assert "yunzhou config set shop/dev DEBUG=" in problems["containers.web.variables.DEBUG"]
    assert "yunzhou secret set shop/dev API_KEY" in problems["containers.web.variables.API_KEY"]
    bad = _score()
    bad["containers"]["web"]["variables"]["X"] = "${resources.env}"
    body = call("POST", ENV + "/deployments", 422, json={"score": bad})
    assert any(p["path"] == "containers.web.variables.X" for p in body["error"]["problems"])


def test_levels_releases_and_rollback_keep_old_secret_versions(api: Api, call: Seen) -> None:
    assert call("GET", ENV + "/config", 200) == {"vars": {}, "version": 0}
    out = call("PATCH", ENV + "/config", 200, json={"set": {"DEBUG": "0", "LEVEL": 3}})
    assert out == {"vars": {"DEBUG": "0", "LEVEL": "3"}, "version": 1, "releases": {}}
    meta = call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY})
    assert meta["version"] == 1
    assert meta["scope"] == "env"
    assert "value" not in meta
    dep = call("POST", ENV + "/deployments", 201, json={"score": _score()})
    assert dep["release"]["number"] == 1
    rel = call("GET", ENV + "/apps/orders/releases/1", 200)
    assert rel["config"] == {"vars": {"DEBUG": "0"}, "secrets": {"API_KEY": {"scope": "env", "version": 1}}}
    assert _outputs(api, "orders", 1) == {"env": {"DEBUG": "0"}, "creds": {"API_KEY": CANARY}}

    # an unreferenced variable changes nothing; a referenced one makes a release
    assert call("PATCH", ENV + "/config", 200, json={"set": {"LEVEL": "4"}})["releases"] == {}
    out = call("PATCH", ENV + "/config", 200, json={"set": {"DEBUG": "1"}, "unset": ["LEVEL"]})
    assert out["releases"] == {"orders": 2}
    rels = call("GET", ENV + "/apps/orders/releases", 200)["items"]
    assert rels[0]["cause"] == "config: DEBUG changed"
    assert rels[0]["changes"] == ["config.vars.DEBUG: changed"]

    # app level wins, and the app's secret replaces the environment's
    call("PATCH", ENV + "/config?app=orders", 200, json={"set": {"DEBUG": "app"}})
    meta = call("PUT", ENV + "/secrets/API_KEY?app=orders", 200, json={"value": CANARY + "-2"})
    assert meta["scope"] == "app"
    assert meta["releases"] == {"orders": 4}
    rels = call("GET", ENV + "/apps/orders/releases", 200)["items"]
    assert rels[0]["cause"] == "config: API_KEY changed"
    assert rels[0]["changes"] == ["config.secrets.API_KEY: changed"]
    assert _outputs(api, "orders", 4) == {"env": {"DEBUG": "app"}, "creds": {"API_KEY": CANARY + "-2"}}
    shown = call("GET", ENV + "/config?app=orders", 200)
    assert shown == {"vars": {"DEBUG": "app"}, "version": 1, "inherited": {}}
    names = [(s["name"], s["scope"]) for s in call("GET", ENV + "/secrets?app=orders", 200)["items"]]
    assert names == [("API_KEY", "env"), ("API_KEY", "app")]

    # setting the same value again is not a change
    assert (
        call("PUT", ENV + "/secrets/API_KEY?app=orders", 200, json={"value": CANARY + "-2"})["changed"]
        is False
    )

    # unsetting the app's secret falls back to the environment's: a release; rollback restores v1 of the app's
    assert call("DELETE", ENV + "/secrets/API_KEY?app=orders", 200)["releases"] == {"orders": 5}
    assert _outputs(api, "orders", 5)["creds"] == {"API_KEY": CANARY}
    call("POST", ENV + "/apps/orders/rollback", 201, json={"to": 4})
    assert _outputs(api, "orders", 6)["creds"] == {"API_KEY": CANARY + "-2"}

    # unsetting what a deployed app needs is refused, naming the app and field
    body = call("DELETE", ENV + "/secrets/API_KEY", 409)
    assert body["error"]["problems"][0]["path"] == "orders.containers.web.variables.API_KEY"
    # the app overrides DEBUG, so unsetting the environment's is no change to it
    assert call("PATCH", ENV + "/config", 200, json={"unset": ["DEBUG"]})["releases"] == {}

    # stale version → 409, invalid names → 422 with paths
    call("PATCH", ENV + "/config", 409, json={"set": {"A": "1"}, "version": 1})  # it is at 4
    body = call("PATCH", ENV + "/config", 422, json={"set": {"1BAD": "x", "OK": {"no": 1}}})
    assert {p["path"] for p in body["error"]["problems"]} == {"set.1BAD", "set.OK"}
    call("PUT", ENV + "/secrets/bad.name", 422, json={"value": "x"})

    rotated = call("POST", "/api/v1/secrets/rotate-key", 200)
    assert rotated["reencrypted"] == 2
    assert len(rotated["retired"]) == 1
    assert _outputs(api, "orders", 6)["creds"] == {"API_KEY": CANARY + "-2"}

    assert not any(CANARY in body for body in call.bodies)
    with api.cp.ctx.db.transaction() as s:
        audit = [repr((e.action, e.target, e.detail)) for e in s.scalars(select(AuditEvent))]
        assert any("secret.set" in a for a in audit)
        assert not any(CANARY in a for a in audit)
        assert s.scalar(select(Environment.id)) is not None


def test_environment_change_releases_every_app_that_uses_it(api: Api, call: Seen) -> None:
    call("PATCH", ENV + "/config", 200, json={"set": {"DEBUG": "0"}})
    call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY})
    for name in ("orders", "billing"):
        call("POST", ENV + "/deployments", 201, json={"score": _score(name)})
    plain = score("plain", command=["python3", "app.py"])
    call("POST", ENV + "/deployments", 201, json={"score": plain})
    meta = call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY + "-new"})
    assert meta["releases"] == {"billing": 2, "orders": 2}
    rollouts = call("GET", ENV + "/apps/orders/rollouts", 200)["items"]
    assert rollouts[0]["kind"] == "config"
    assert rollouts[0]["to_release"] == 2
    assert not any(CANARY in body for body in call.bodies)


def test_viewer_reads_names_not_values_and_cannot_change(api: Api, call: Seen) -> None:
    call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY})
    viewer = api.member("shop", "vera", "viewer")
    r = api.http.get(ENV + "/secrets", headers=viewer)
    assert r.status_code == 200
    assert r.json()["items"][0]["name"] == "API_KEY"
    assert CANARY not in r.text
    assert api.http.put(ENV + "/secrets/API_KEY", json={"value": "x"}, headers=viewer).status_code == 403
    developer = api.member("shop", "dev", "developer")
    assert api.http.post("/api/v1/secrets/rotate-key", headers=developer).status_code == 403


def test_reveal_is_for_maintainers_and_up_and_audited_without_the_value(api: Api, call: Seen) -> None:
    call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY})
    call("PUT", ENV + "/secrets/API_KEY", 200, json={"value": CANARY + "-v2"})
    call("PUT", ENV + "/secrets/API_KEY?app=orders", 200, json={"value": CANARY + "-app"})
    reveal = ENV + "/secrets/API_KEY/reveal"
    for principal, role in (("mia", "maintainer"), ("olga", "owner")):
        r = api.http.post(reveal, headers=api.member("shop", principal, role))
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "API_KEY", "version": 2, "value": CANARY + "-v2"}
    r = api.http.post(reveal + "?app=orders", headers=api.admin)
    assert r.json() == {"name": "API_KEY", "version": 1, "value": CANARY + "-app"}
    for principal, role in (("dev", "developer"), ("vera", "viewer")):
        r = api.http.post(reveal, headers=api.member("shop", principal, role))
        assert r.status_code == 403, r.text
        assert CANARY not in r.text
    ro = api.member("shop", "ro", "maintainer", ("read",))
    assert api.http.post(reveal, headers=ro).status_code == 403, "a read-only token never reveals"
    r = api.http.post(ENV + "/secrets/NOPE/reveal", headers=api.admin)
    assert r.status_code == 404
    with api.cp.ctx.db.transaction() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "secret.reveal")).all()
        done = sorted((r.actor, r.target, r.outcome, r.detail.get("version")) for r in rows)
        assert not any(CANARY in f"{r.detail} {r.target}" for r in rows)
    assert ("mia", "shop/dev:API_KEY", "success", 2) in done
    assert ("olga", "shop/dev:API_KEY", "success", 2) in done
    assert ("admin", "shop/dev/orders:API_KEY", "success", 1) in done
    assert ("dev", "shop/dev", "denied", None) in done
    assert ("vera", "shop/dev", "denied", None) in done
