"""GET /api/v1/registry/token: who gets which registry actions (the JWT's access claim), basic and bearer
credentials, refusals, audit. The real registry's verdict on these tokens: test_registry_access.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.conftest import Api

URL = "/api/v1/registry/token"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def basic(token: str, username: str = "anything") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()}


def bearer_secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def ask(api: Api, headers: dict[str, str], *scopes: str) -> httpx.Response:
    params = [("service", "yunzhou-registry"), *(("scope", s) for s in scopes)]
    return api.http.get(URL, params=params, headers=headers)


def granted(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] > 0
    assert body["issued_at"].endswith("Z")
    return {a["name"]: a["actions"] for a in claims(body["token"])["access"]}


def setup_projects(api: Api) -> None:
    for name in ("alpha", "beta"):
        assert api.http.post("/api/v1/projects", json={"name": name}, headers=api.admin).status_code == 201


def test_a_developer_gets_push_and_pull_on_its_project_and_nothing_on_another(api: Api) -> None:
    setup_projects(api)
    dev = api.member("alpha", "dev", "developer")
    r = ask(api, basic(bearer_secret(dev)), "repository:alpha/web:pull,push", "repository:beta/web:pull,push")
    assert granted(r) == {"alpha/web": ["pull", "push"]}
    token = claims(r.json()["token"])
    assert (token["sub"], token["aud"], token["iss"]) == ("dev", "yunzhou-registry", "yunzhou")
    assert token["nbf"] <= token["iat"] < token["exp"]
    assert token["jti"]


def test_a_viewer_and_a_read_only_token_get_pull_only(api: Api) -> None:
    setup_projects(api)
    viewer = api.member("alpha", "viewer", "viewer")
    assert granted(ask(api, viewer, "repository:alpha/web:pull,push")) == {"alpha/web": ["pull"]}
    reader = api.member("alpha", "reader", "developer", ("read",))
    assert granted(ask(api, reader, "repository:alpha/web:push,pull")) == {"alpha/web": ["pull"]}


def test_delete_the_catalog_unknown_types_and_bad_names_grant_nothing_to_members(api: Api) -> None:
    setup_projects(api)
    owner = api.member("alpha", "owner", "owner")
    r = ask(
        api,
        owner,
        "repository:alpha/web:delete,*",
        "registry:catalog:*",
        "repository(plugin):alpha/web:pull",
        "repository:alpha:pull",  # a bare project name is no project repository
        "repository:alpha/../beta/web:pull",
        "repository:ALPHA/web:pull",
    )
    assert granted(r) == {}


def test_a_platform_admin_gets_what_it_asks_for(api: Api) -> None:
    setup_projects(api)
    r = ask(api, api.admin, "repository:beta/web:pull,push,delete", "registry:catalog:*")
    assert granted(r) == {"beta/web": ["pull", "push", "delete"], "catalog": ["*"]}


def test_several_scopes_in_one_parameter_and_a_registry_host_with_a_port(api: Api) -> None:
    setup_projects(api)
    dev = api.member("alpha", "dev", "developer")
    r = ask(api, dev, "repository:alpha/web:pull repository:alpha/api:push")
    assert granted(r) == {"alpha/web": ["pull"], "alpha/api": ["push"]}


def test_refused_credentials_are_401_asking_for_basic_auth(api: Api) -> None:
    for headers in (
        {},
        basic("yzt_not-a-token"),
        basic(""),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer yzt_unknown"},
    ):
        r = ask(api, headers, "repository:alpha/web:pull")
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Basic"), headers


def test_another_service_or_a_malformed_scope_is_a_422_naming_the_field(api: Api) -> None:
    r = api.http.get(URL, params={"service": "elsewhere"}, headers=api.admin)
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["path"] == "query.service"
    r = api.http.get(URL, params={"scope": "nonsense"}, headers=api.admin)
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["path"] == "query.scope.0"


def test_a_push_token_is_audited_a_pull_token_is_not(api: Api) -> None:
    setup_projects(api)
    dev = api.member("alpha", "dev", "developer")
    ask(api, dev, "repository:alpha/web:pull")
    ask(api, dev, "repository:alpha/web:pull,push")
    events = api.http.get("/api/v1/audit", params={"action": "registry.push-token"}, headers=api.admin)
    rows = [e for e in events.json()["items"] if e["action"] == "registry.push-token"]
    assert [(e["actor"], e["target"], e["project"]) for e in rows] == [("dev", "alpha/web", "alpha")]
