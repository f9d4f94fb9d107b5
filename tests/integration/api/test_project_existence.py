"""A caller who may not read a project learns nothing about whether it exists: every request about it
answers exactly as for a project that does not exist (issue 14, security item 11). The one exception,
documented in docs/api.md, is creating a project: a taken name is 409 for everyone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import score

V1 = "/api/v1"
PATH_VALUES = {
    "env": "dev",
    "app": "orders",
    "number": "1",
    "rollout_id": "1",
    "principal": "somebody",
    "name": "API_KEY",
    "silence_id": "1",
    "host": "www.example.test",
}
BODIES: dict[str, Any] = {
    "POST": {"name": "dev", "score": score(), "role": "viewer"},
    "PUT": {"role": "viewer", "value": "v", "replicas": 2, "name": "x"},
    "PATCH": {"settings": {"replicas": 2}, "set": {"A": "1"}},
}


def _project_operations(api: Api) -> list[tuple[str, str]]:
    paths = api.http.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, item in paths.items()
        if "{project}" in path
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _answer(api: Api, method: str, path: str, project: str, who: dict[str, str]) -> tuple[int, str]:
    url = path.replace("{project}", project)
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], url)
    r = api.http.request(method, url, json=BODIES.get(method), headers=who)
    is_json = r.headers.get("content-type", "").startswith("application/json")
    error = r.json().get("error", {}) if is_json else {}
    message = str(error.get("message", "")).replace(project, "<project>")
    return r.status_code, message


def test_non_members_get_the_same_answer_for_existing_and_missing_projects(api: Api) -> None:
    assert api.http.post(f"{V1}/projects", json={"name": "secret"}, headers=api.admin).status_code == 201
    r = api.http.post(f"{V1}/projects/secret/environments", json={"name": "dev"}, headers=api.admin)
    assert r.status_code == 201
    stranger = api.token_for("mallory")
    differ = []
    for method, path in _project_operations(api):
        there = _answer(api, method, path, "secret", stranger)
        missing = _answer(api, method, path, "absent", stranger)
        if there != missing:
            differ.append(f"{method} {path}: {there} vs {missing}")
    assert differ == []


@pytest.mark.parametrize("who", ["stranger", "admin"])
def test_creating_a_taken_project_name_is_409_for_everyone(api: Api, who: str) -> None:
    assert api.http.post(f"{V1}/projects", json={"name": "secret"}, headers=api.admin).status_code == 201
    headers = api.admin if who == "admin" else api.token_for("mallory")
    r = api.http.post(f"{V1}/projects", json={"name": "secret"}, headers=headers)
    assert r.status_code == 409
    assert r.json()["error"]["message"] == "project 'secret' already exists"
