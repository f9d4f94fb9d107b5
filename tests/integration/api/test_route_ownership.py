"""Hosts are owned (issue 14, security item 2): a project cannot route another project's host — an extra
route, a canary preview host, or another app's default host — at the API (deploy, settings change,
rollback); the 409 names the owner only to callers who may read its project. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.helpers import score

V1 = "/api/v1"
HOST = "shop.example.test"


def setup_project(api: Api, principal: str, project: str, env: str) -> dict[str, str]:
    headers = api.token_for(principal)
    assert api.http.post(f"{V1}/projects", json={"name": project}, headers=headers).status_code == 201
    r = api.http.post(f"{V1}/projects/{project}/environments", json={"name": env}, headers=headers)
    assert r.status_code == 201, r.text
    return headers


def deploy(api: Api, headers: dict[str, str], env: str, app: str, **settings: Any) -> Any:
    body = {"score": score(app, command=["python3", "-m", "http.server"]), "settings": settings}
    project, env_name = env.split("/")
    url = f"{V1}/projects/{project}/environments/{env_name}/deployments"
    return api.http.post(url, json=body, headers=headers)


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()["error"]
    return doc


def test_another_projects_host_is_refused_with_409_and_the_owner_named_only_to_who_may_read_it(
    api: Api,
) -> None:
    alice = setup_project(api, "alice", "shop", "prod")
    assert deploy(api, alice, "shop/prod", "web", routes=[{"host": HOST}]).status_code == 201
    mallory = setup_project(api, "mallory", "evil", "dev")

    for settings, field in (
        ({"routes": [{"host": HOST}]}, "settings.routes.0.host"),
        (
            {"routes": [{"host": "free.example.test"}, {"host": HOST, "path": "/admin"}]},
            "settings.routes.1.host",
        ),
        ({"rollout": {"strategy": "blue-green", "previewHost": HOST}}, "settings.rollout.previewHost"),
    ):
        doc = error(deploy(api, mallory, "evil/dev", "xx", **settings), 409)
        assert doc["code"] == "conflict"
        assert [p["path"] for p in doc["problems"]] == [field]
        assert "an app of another project" in doc["message"]
        assert "shop/prod/web" not in str(doc)  # a stranger learns the host is taken, not by whom
    # nothing was written for the refused deploys
    assert api.http.get(f"{V1}/projects/evil/environments/dev/apps/xx", headers=mallory).status_code == 404

    # an admin, or a member of the owning project, is told who has it
    assert (
        "app shop/prod/web"
        in error(deploy(api, api.admin, "evil/dev", "xx", routes=[{"host": HOST}]), 409)["message"]
    )
    api.member("shop", "mallory", "viewer")
    assert (
        "app shop/prod/web"
        in error(deploy(api, mallory, "evil/dev", "xx", routes=[{"host": HOST}]), 409)["message"]
    )


def test_another_apps_default_host_and_a_projects_names_are_refused_before_the_app_exists(api: Api) -> None:
    setup_project(api, "alice", "shop", "prod")
    mallory = setup_project(api, "mallory", "evil", "dev")
    for host, says in (
        ("web.prod.shop.localhost", "names of project 'shop'"),  # shop/prod/web's default host (no app yet)
        ("admin.shop.localhost", "names of project 'shop'"),
    ):
        doc = error(deploy(api, mallory, "evil/dev", "xx", routes=[{"host": host}]), 409)
        assert says in doc["message"]
        assert doc["problems"][0]["path"] == "settings.routes.0.host"
    # inside its own project: another app's default host is that app's; its own names are free to use
    doc = error(deploy(api, mallory, "evil/dev", "xx", routes=[{"host": "y.dev.evil.localhost"}]), 409)
    assert "the default host of app evil/dev/y" in doc["message"]
    routes = [{"host": "api.evil.localhost"}, {"host": "xx.dev.evil.localhost", "path": "/v2"}]
    assert deploy(api, mallory, "evil/dev", "xx", routes=routes).status_code == 201
    # '/' on its own default host is its default route already
    doc = error(deploy(api, mallory, "evil/dev", "xx", routes=[{"host": "xx.dev.evil.localhost"}]), 422)
    assert doc["problems"][0]["path"] == "settings.routes.0.host"


def test_one_project_shares_a_host_by_path_and_a_released_host_can_be_claimed(api: Api) -> None:
    alice = setup_project(api, "alice", "shop", "prod")
    assert deploy(api, alice, "shop/prod", "web", routes=[{"host": HOST}]).status_code == 201
    assert deploy(api, alice, "shop/prod", "api", routes=[{"host": HOST, "path": "/api/"}]).status_code == 201
    doc = error(deploy(api, alice, "shop/prod", "api2", routes=[{"host": HOST, "path": "/api"}]), 409)
    assert f"{HOST}/api is routed by app shop/prod/api" in doc["message"]

    mallory = setup_project(api, "mallory", "evil", "dev")
    error(
        deploy(api, mallory, "evil/dev", "xx", routes=[{"host": "other.example.test"}, {"host": HOST}]), 409
    )
    # the owner stops routing the host (a settings change): from then on it is free
    for app in ("web", "api"):
        r = api.http.patch(
            f"{V1}/projects/shop/environments/prod/apps/{app}/settings",
            json={"settings": {"routes": None}},
            headers=alice,
        )
        assert r.status_code == 201, r.text
    assert deploy(api, mallory, "evil/dev", "xx", routes=[{"host": HOST}]).status_code == 201
    # and the owner's rollback to the release that routed it is refused: the host is another project's now
    r = api.http.post(
        f"{V1}/projects/shop/environments/prod/apps/web/rollback", json={"to": 1}, headers=alice
    )
    assert error(r, 409)["problems"][0]["path"] == "settings.routes.0.host"


def test_ip_addresses_and_the_base_domain_are_nobodys_host(api: Api) -> None:
    """The router answers http://127.0.0.1:8080/ and http://localhost/ for everyone: no project may put
    its app there (a write token could otherwise serve its page to every user of the machine)."""
    mallory = setup_project(api, "mallory", "evil", "dev")
    for host in ("127.0.0.1", "::1", "[::1]", "10.0.0.7", "localhost"):
        doc = error(deploy(api, mallory, "evil/dev", "xx", routes=[{"host": host}]), 422)
        assert [p["path"] for p in doc["problems"]] == ["settings.routes.0.host"], host
        if ":" not in host:  # IPv6 forms are not host names to the settings parser already
            assert "which no app may route" in doc["problems"][0]["message"], host
    assert api.http.get(f"{V1}/projects/evil/environments/dev/apps/xx", headers=mallory).status_code == 404
    # a name of its own is still fine
    assert deploy(api, mallory, "evil/dev", "xx", routes=[{"host": "evil.example.test"}]).status_code == 201
