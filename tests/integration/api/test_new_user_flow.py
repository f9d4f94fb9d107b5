"""The control plane as a new user meets it: on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.conftest import Api
from tests.helpers import score
from yunzhou.store.models import App, AuditEvent, Release, Rollout, WorkItem

V1 = "/api/v1"


def _setup(api: Api) -> None:
    assert api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    r = api.http.post(f"{V1}/projects/shop/environments", json={"name": "dev"}, headers=api.admin)
    assert r.status_code == 201, r.text


def _count(api: Api, model: type) -> int:
    with api.cp.ctx.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_deploy_records_release_rollout_work_item_and_audit(api: Api) -> None:
    _setup(api)
    r = api.http.post(
        f"{V1}/projects/shop/environments/dev/deployments", json={"score": score()}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["release"]["number"] == 1
    assert body["release"]["changes"] == ["first release"]
    assert body["rollout"]["state"] == "pending"
    assert body["app"]["address"] == "shop/dev/orders"
    assert body["app"]["route"] == "http://orders.dev.shop.localhost:8080"
    assert body["app"]["replicas"] == 1
    assert _count(api, WorkItem) == 1  # the reconciler has been told

    r = api.http.post(
        f"{V1}/projects/shop/environments/dev/deployments",
        json={"score": score(image="python:3.12"), "settings": {"replicas": 3}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    release = r.json()["release"]
    assert release["number"] == 2
    assert "score.containers.web.image: python:3.11 → python:3.12" in release["changes"]
    assert "settings.replicas: added (3)" in release["changes"]
    assert r.json()["app"]["replicas"] == 3
    rollouts = api.http.get(
        f"{V1}/projects/shop/environments/dev/apps/orders/rollouts", headers=api.admin
    ).json()
    assert [x["state"] for x in rollouts["items"]] == ["pending", "superseded"]

    actions = [
        (e["action"], e["outcome"], e["actor"])
        for e in api.http.get(f"{V1}/audit", headers=api.admin).json()["items"]
    ]
    assert ("app.deploy", "success", "admin") in actions
    assert ("env.create", "success", "admin") in actions
    assert ("project.create", "success", "admin") in actions


def test_invalid_score_writes_nothing_but_an_audit_record(api: Api) -> None:
    _setup(api)
    bad = score()
    bad["containers"]["web"]["readinessProbe"] = {"httpGet": {"path": "/", "port": 70000}}
    del bad["containers"]["web"]["image"]
    r = api.http.post(
        f"{V1}/projects/shop/environments/dev/deployments",
        json={"score": bad, "settings": {"replicas": -1}},
        headers=api.admin,
    )
    assert r.status_code == 422
    err = r.json()["error"]
    paths = {p["path"] for p in err["problems"]}
    assert "containers.web.readinessProbe.httpGet.port" in paths
    assert "containers.web.image" in paths
    assert "settings.replicas" in paths
    assert err["request_id"] == r.headers["x-request-id"]
    assert _count(api, App) == 0
    assert _count(api, Release) == 0
    assert _count(api, Rollout) == 0
    assert _count(api, WorkItem) == 0
    with api.cp.ctx.db.transaction() as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "app.deploy")).all()
    assert [(e.outcome, e.actor, e.target) for e in refused] == [("invalid", "admin", "shop/dev")]


def test_stale_version_conflicts_and_changes_nothing(api: Api) -> None:
    _setup(api)
    app = api.http.post(
        f"{V1}/projects/shop/environments/dev/deployments", json={"score": score()}, headers=api.admin
    )
    version = app.json()["app"]["version"]
    url = f"{V1}/projects/shop/environments/dev/apps/orders/replicas"
    assert api.http.put(url, json={"replicas": 2, "version": version}, headers=api.admin).status_code == 200
    stale = api.http.put(url, json={"replicas": 5, "version": version}, headers=api.admin)
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"
    current = api.http.get(f"{V1}/projects/shop/environments/dev/apps/orders", headers=api.admin).json()
    assert current["replicas"] == 2


def test_rollback_creates_a_new_release_copying_the_old_one(api: Api) -> None:
    _setup(api)
    deploy = f"{V1}/projects/shop/environments/dev/deployments"
    api.http.post(deploy, json={"score": score(image="img:v1")}, headers=api.admin)
    api.http.post(deploy, json={"score": score(image="img:v2")}, headers=api.admin)
    r = api.http.post(f"{V1}/projects/shop/environments/dev/apps/orders/rollback", json={}, headers=api.admin)
    assert r.status_code == 201, r.text
    assert r.json()["release"]["number"] == 3
    assert r.json()["release"]["cause"] == "rollback to 1"
    third = api.http.get(
        f"{V1}/projects/shop/environments/dev/apps/orders/releases/3", headers=api.admin
    ).json()
    assert third["score"]["containers"]["web"]["image"] == "img:v1"
    first = api.http.get(
        f"{V1}/projects/shop/environments/dev/apps/orders/releases/1", headers=api.admin
    ).json()
    assert third["score"] == first["score"]
    missing = api.http.post(
        f"{V1}/projects/shop/environments/dev/apps/orders/rollback", json={"to": 9}, headers=api.admin
    )
    assert missing.status_code == 404


def test_settings_patch_and_per_environment_overrides(api: Api) -> None:
    _setup(api)
    api.http.post(f"{V1}/projects/shop/environments", json={"name": "prod"}, headers=api.admin)
    settings = {"replicas": 1, "environments": {"prod": {"replicas": 4, "rollout": {"maxUnavailable": 1}}}}
    for env, want in (("dev", 1), ("prod", 4)):
        r = api.http.post(
            f"{V1}/projects/shop/environments/{env}/deployments",
            json={"score": score(), "settings": settings},
            headers=api.admin,
        )
        assert r.status_code == 201, r.text
        assert r.json()["app"]["replicas"] == want
    prod = api.http.get(
        f"{V1}/projects/shop/environments/prod/apps/orders/settings", headers=api.admin
    ).json()
    assert prod["settings"]["rollout"] == {"strategy": "rolling", "maxSurge": 1, "maxUnavailable": 1}
    r = api.http.patch(
        f"{V1}/projects/shop/environments/prod/apps/orders/settings",
        json={"settings": {"rollout": {"maxSurge": "50%"}}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["release"]["cause"] == "settings"
    assert "settings.rollout.maxSurge: 1 → 50%" in r.json()["release"]["changes"]
    bad = api.http.patch(
        f"{V1}/projects/shop/environments/prod/apps/orders/settings",
        json={"settings": {"rollout": {"maxSurge": 0, "maxUnavailable": 0}}},
        headers=api.admin,
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"][0]["path"] == "settings.rollout"


def test_names_must_be_dns_labels(api: Api) -> None:
    r = api.http.post(f"{V1}/projects", json={"name": "Shop_1"}, headers=api.admin)
    assert r.status_code == 422
    problem = r.json()["error"]["problems"][0]
    assert problem["path"] == "name"
    assert "DNS label" in problem["message"]
    assert api.http.get(f"{V1}/projects", headers=api.admin).json()["items"] == []


def test_tokens_expire_and_revoke(api: Api) -> None:
    r = api.http.post(
        f"{V1}/tokens", json={"name": "ci", "scopes": ["read"], "expires_in_seconds": 3600}, headers=api.admin
    )
    assert r.status_code == 201
    token = r.json()
    h = api.headers(token["token"])
    assert api.http.get(f"{V1}/whoami", headers=h).json()["scopes"] == ["read"]
    assert "token" not in api.http.get(f"{V1}/tokens", headers=api.admin).json()["items"][0]
    assert api.http.delete(f"{V1}/tokens/{token['id']}", headers=api.admin).status_code == 204
    gone = api.http.get(f"{V1}/whoami", headers=h)
    assert gone.status_code == 401
    assert "revoked" in gone.json()["error"]["message"]
    # a read-only token cannot mint a write token
    ro = api.http.post(
        f"{V1}/tokens", json={"name": "ro", "scopes": ["read"], "principal": "alice"}, headers=api.admin
    )
    escalate = api.http.post(
        f"{V1}/tokens", json={"name": "x", "scopes": ["write"]}, headers=api.headers(ro.json()["token"])
    )
    assert escalate.status_code == 403


def test_token_expiry_is_enforced(api: Api) -> None:
    from datetime import timedelta

    r = api.http.post(
        f"{V1}/tokens",
        json={"name": "short", "scopes": ["read"], "expires_in_seconds": 60},
        headers=api.admin,
    )
    h = api.headers(r.json()["token"])
    real = api.cp.ctx.clock
    api.cp.ctx.clock = lambda: real() + timedelta(seconds=61)
    try:
        expired = api.http.get(f"{V1}/whoami", headers=h)
    finally:
        api.cp.ctx.clock = real
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_members_of_one_project_see_nothing_of_another(api: Api) -> None:
    for name in ("alpha", "beta"):
        api.http.post(f"{V1}/projects", json={"name": name}, headers=api.admin)
    alice = api.member("alpha", "alice", "owner")
    assert [p["name"] for p in api.http.get(f"{V1}/projects", headers=alice).json()["items"]] == ["alpha"]
    hidden = api.http.get(f"{V1}/projects/beta", headers=alice)
    assert hidden.status_code == 404
    assert api.http.get(f"{V1}/projects/nonexistent", headers=alice).json()["error"]["message"] == (
        "project 'nonexistent' not found"
    )
    assert hidden.json()["error"]["message"] == "project 'beta' not found"
    api.http.post(f"{V1}/projects/beta/environments", json={"name": "dev"}, headers=api.admin)
    events = api.http.get(f"{V1}/audit", headers=alice).json()["items"]
    assert events
    assert all(e["project"] in ("alpha", None) for e in events)
    assert not any("beta" in e["target"] for e in events)


def test_viewer_cannot_deploy_and_the_refusal_is_audited(api: Api) -> None:
    _setup(api)
    viewer = api.member("shop", "vera", "viewer")
    r = api.http.post(
        f"{V1}/projects/shop/environments/dev/deployments", json={"score": score()}, headers=viewer
    )
    assert r.status_code == 403
    assert "viewer" in r.json()["error"]["message"]
    assert _count(api, App) == 0
    denied = api.http.get(f"{V1}/audit", params={"outcome": "denied"}, headers=api.admin).json()["items"]
    assert [(e["actor"], e["action"], e["target"]) for e in denied] == [("vera", "app.deploy", "shop/dev")]


def test_last_owner_cannot_be_removed(api: Api) -> None:
    api.http.post(f"{V1}/projects", json={"name": "solo"}, headers=api.admin)
    r = api.http.delete(f"{V1}/projects/solo/members/admin", headers=api.admin)
    assert r.status_code == 409
    members = api.http.get(f"{V1}/projects/solo/members", headers=api.admin).json()["items"]
    assert members == [{"principal": "admin", "role": "owner"}]
