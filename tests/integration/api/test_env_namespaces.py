"""One environment per namespace of a cluster (issue 14, security item 12): shop/prod-eu and shop-prod/eu
both default to namespace shop-prod-eu; the second is refused with 409 at `namespace`, naming the other
environment only to those who may see it. The unique index makes it hold under races too. SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from yunzhou.services import projects
from yunzhou.store.models import Cluster

V1 = "/api/v1"


def register(api: Api, name: str) -> None:
    """A cluster row as `cluster add` leaves it (no API server needed: environments only name it)."""
    box = api.cp.ctx.secret_box
    assert box is not None
    with api.cp.ctx.db.transaction() as s:
        s.add(
            Cluster(
                name=name,
                server="https://k8s.test:6443",
                server_version="v1.31.0",
                context="c",
                base_domain=f"{name}.localhost",
                kubeconfig_ciphertext=box.seal(b"{}"),
                created_at=api.cp.ctx.clock(),
                created_by="admin",
            )
        )


def create_env(api: Api, headers: dict[str, str], project: str, env: str, **body: Any) -> Any:
    return api.http.post(
        f"{V1}/projects/{project}/environments",
        json={"name": env, "target": "cluster:prod", **body},
        headers=headers,
    )


@pytest.fixture
def two_projects(api: Api) -> tuple[dict[str, str], dict[str, str]]:
    register(api, "prod")
    register(api, "other")
    alice = api.token_for("alice")
    bob = api.token_for("bob")
    assert api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=alice).status_code == 201
    assert api.http.post(f"{V1}/projects", json={"name": "shop-prod"}, headers=bob).status_code == 201
    return alice, bob


def test_a_default_namespace_another_project_uses_is_refused(
    api: Api, two_projects: tuple[dict[str, str], dict[str, str]]
) -> None:
    alice, bob = two_projects
    r = create_env(api, alice, "shop", "prod-eu")
    assert r.status_code == 201, r.text
    assert r.json()["namespace"] == "shop-prod-eu"

    r = create_env(api, bob, "shop-prod", "eu")
    assert r.status_code == 409, r.text
    problem = r.json()["error"]["problems"][0]
    assert problem["path"] == "namespace"
    assert "'shop-prod-eu' (the default, {project}-{env})" in problem["message"]
    assert "used by another project" in problem["message"]  # bob is not in shop: not told who
    assert "shop/prod-eu" not in r.text
    assert "choose another namespace (--namespace), e.g. shop-prod-eu-2" in problem["message"]
    assert api.http.get(f"{V1}/projects/shop-prod/environments", headers=bob).json()["items"] == []

    # an admin (or a member of shop) is told which environment holds it
    r = create_env(api, api.admin, "shop-prod", "eu")
    assert "used by environment shop/prod-eu" in r.json()["error"]["message"]

    # the suggestion works; the same namespace on another cluster is another namespace
    assert create_env(api, bob, "shop-prod", "eu", namespace="shop-prod-eu-2").status_code == 201
    r = create_env(api, bob, "shop-prod", "eu-other", target="cluster:other", namespace="shop-prod-eu")
    assert r.status_code == 201, r.text


def test_an_explicit_namespace_in_use_is_refused_and_local_targets_are_not_affected(
    api: Api, two_projects: tuple[dict[str, str], dict[str, str]]
) -> None:
    alice, bob = two_projects
    assert create_env(api, alice, "shop", "dev", namespace="shop-apps").status_code == 201
    r = create_env(api, alice, "shop", "qa", namespace="shop-apps")
    assert r.status_code == 409
    assert "used by environment shop/dev" in r.json()["error"]["problems"][0]["message"]
    assert "(the default" not in r.text
    for project, headers in (("shop", alice), ("shop-prod", bob)):
        r = create_env(api, headers, project, "local-one", target="local", namespace="apps")
        assert r.status_code == 201, r.text


def test_a_race_past_the_check_is_still_one_409_at_namespace(
    api: Api, two_projects: tuple[dict[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two creates that both passed the look-up: the unique index refuses the second, translated to 409."""
    alice, bob = two_projects
    monkeypatch.setattr(projects, "_check_namespace_free", lambda *args: None)
    assert create_env(api, alice, "shop", "prod-eu").status_code == 201
    r = create_env(api, bob, "shop-prod", "eu")
    assert r.status_code == 409, r.text
    problem = r.json()["error"]["problems"][0]
    assert problem["path"] == "namespace"
    assert "used by another project" in problem["message"]
    assert api.http.get(f"{V1}/projects/shop-prod/environments", headers=bob).json()["items"] == []


def test_a_project_cannot_place_an_environment_in_a_namespace_not_its_own(
    api: Api, two_projects: tuple[dict[str, str], dict[str, str]]
) -> None:
    """Only other Yunzhou environments were checked: a write token could deploy into kube-system (even by
    default: project kube, env system), default, or an ingress controller's namespace, whose pods other
    apps' NetworkPolicies admit as `external` traffic. 422 at namespace; nothing is written."""
    alice, _ = two_projects
    assert api.http.post(f"{V1}/projects", json={"name": "kube"}, headers=alice).status_code == 201
    attempts = [
        ("shop", "ingress", {"namespace": "ingress-nginx"}, "not one of project 'shop'"),
        ("shop", "dflt", {"namespace": "default"}, "only a platform admin"),
        ("shop", "other", {"namespace": "shop2-dev"}, "not one of project 'shop'"),
        ("shop", "sys", {"namespace": "kube-system"}, "the cluster's own"),
        ("kube", "system", {}, "'kube-system' (the default, {project}-{env}) is one of the cluster's own"),
    ]
    for project, env, body, why in attempts:
        r = create_env(api, alice, project, env, **body)
        assert r.status_code == 422, (body, r.text)
        problem = r.json()["error"]["problems"][0]
        assert problem["path"] == "namespace"
        assert why in problem["message"], problem
    for project in ("shop", "kube"):
        assert api.http.get(f"{V1}/projects/{project}/environments", headers=alice).json()["items"] == []
    for env, namespace in (("dev", "shop"), ("qa", "shop-qa-1")):
        assert create_env(api, alice, "shop", env, namespace=namespace).status_code == 201
    # an operator may put one in a namespace prepared for it, but never in kube-*
    assert create_env(api, api.admin, "shop", "team", namespace="team-a").status_code == 201
    assert create_env(api, api.admin, "shop", "sys", namespace="kube-system").status_code == 422
