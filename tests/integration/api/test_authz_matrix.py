"""Role × endpoint authorization, generated from the route table: every route declares a Permission
(x-yunzhou-permission), and every caller kind gets exactly what `domain.access.may` says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.helpers import score
from yunzhou.api import create_app
from yunzhou.api.auth import PERMISSION_KEY
from yunzhou.domain.access import Permission, Role, Scope, may, scope_allows
from yunzhou.services import ControlPlane
from yunzhou.store import Database, sqlite_url, upgrade

PUBLIC = {"health"}
PATH_VALUES = {
    "project": "shop",
    "env": "dev",
    "app": "orders",
    "number": "1",
    "rollout_id": "1",
    "principal": "somebody",
    "token_id": "tok_000000000000",
    "name": "API_KEY",
    "cluster": "nowhere",
    "silence_id": "1",
    "build_id": "b000000000000",
    "host": "www.example.test",
}
# (label, project role or None, token scopes)
CALLERS = [
    ("outsider-rw", None, ("read", "write")),
    ("viewer-rw", Role.VIEWER, ("read", "write")),
    ("developer-ro", Role.DEVELOPER, ("read",)),
    ("developer-rw", Role.DEVELOPER, ("read", "write")),
    ("maintainer-rw", Role.MAINTAINER, ("read", "write")),
    ("owner-rw", Role.OWNER, ("read", "write")),
    ("admin", None, ("admin",)),
    ("metrics-only", None, ("metrics",)),
]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str
    permission: str | None


def _operations() -> list[Operation]:
    """The route table, as the application itself publishes it."""
    app = create_app(ControlPlane.create(Database("sqlite+pysqlite://"), Path()))
    return [
        Operation(method.upper(), path, op["operationId"], op.get(PERMISSION_KEY))
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
    ]


OPERATIONS = _operations()


def test_every_api_route_declares_a_permission() -> None:
    assert len(OPERATIONS) >= 25
    undeclared = [o.path for o in OPERATIONS if o.name not in PUBLIC and o.permission is None]
    assert undeclared == []


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Api]:
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    api = Api(ControlPlane.create(db, tmp_path / "data"))
    with api.http:
        assert api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
        api.http.post("/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin)
        r = api.http.post(
            "/api/v1/projects/shop/environments/dev/deployments", json={"score": score()}, headers=api.admin
        )
        assert r.status_code == 201
        yield api
    db.dispose()


def _headers(api: Api, label: str, role: Role | None, scopes: tuple[str, ...]) -> dict[str, str]:
    if label == "admin":
        return api.admin
    if role is None:
        return api.token_for(label, scopes)
    return api.member("shop", label, role.value, scopes)


@pytest.mark.parametrize("route", [o for o in OPERATIONS if o.name not in PUBLIC], ids=lambda o: o.name)
def test_route_enforces_its_permission(world: Api, route: Operation) -> None:
    assert route.permission is not None
    permission = Permission[route.permission]
    method = route.method
    path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], route.path)
    kwargs: dict[str, object] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    unauthenticated = world.http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert unauthenticated.status_code == 401, (route.name, unauthenticated.text)
    for label, role, scopes in CALLERS:
        headers = _headers(world, label, role, scopes)
        r = world.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        allowed = may(frozenset(Scope(s) for s in scopes), role, permission)
        refused_by_authz = r.status_code == 403 or (
            r.status_code == 404 and r.json()["error"]["message"] == "project 'shop' not found"
        )
        assert r.status_code != 401, (route.name, label, r.text)
        assert refused_by_authz != allowed, (route.name, label, permission.name, r.status_code, r.text)
        token_scope_fits = scope_allows(frozenset(Scope(s) for s in scopes), permission.scope)
        if not allowed and role is None and permission.role is not None and token_scope_fits:
            # (a token whose scope does not fit is refused before any lookup: 403 says nothing either)
            assert r.status_code == 404, "non-members must not learn that the project exists"
