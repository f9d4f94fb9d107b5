"""Images on clusters, the control plane's side: a cluster's registry address (validated host[:port],
stored with the cluster, changeable), and each project's pull-only credential, which opens nothing but
the registry's token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Api
from yunzhou.domain.access import Permission
from yunzhou.reconcile.cluster_images import ClusterImageAccess
from yunzhou.services import ControlPlane, ProbeResult
from yunzhou.services.pull_credentials import PullCredentialService, pull_principal
from yunzhou.store import Database, sqlite_url, upgrade
from yunzhou.store.models import AuditEvent, PullCredential

V1 = "/api/v1"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "c",
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
}


def _probe(name: str, doc: dict[str, Any], context: str | None) -> ProbeResult:
    return ProbeResult(server="https://127.0.0.1:1", version="v1.31.0", context=context or "c")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    db = Database(sqlite_url(tmp_path))
    upgrade(db.engine)
    (tmp_path / "data").mkdir()
    api = Api(ControlPlane.create(db, tmp_path / "data", cluster_probe=_probe))
    with api.http:
        yield api
    db.dispose()


def _add(api: Api, **extra: Any) -> Any:
    return api.http.post(
        f"{V1}/clusters", json={"name": "prod", "kubeconfig": KUBECONFIG, **extra}, headers=api.admin
    )


def test_a_clusters_registry_address_is_stored_shown_and_changed(api: Api) -> None:
    r = _add(api, registry="10.0.0.5:5000")
    assert r.status_code == 201, r.text
    assert r.json()["registry"] == "10.0.0.5:5000"
    (listed,) = api.http.get(f"{V1}/clusters", headers=api.admin).json()["items"]
    assert listed["registry"] == "10.0.0.5:5000"
    r = api.http.patch(f"{V1}/clusters/prod", json={"registry": "registry.internal"}, headers=api.admin)
    assert (r.status_code, r.json()["registry"]) == (200, "registry.internal"), r.text
    r = api.http.patch(f"{V1}/clusters/prod", json={"registry": None}, headers=api.admin)
    assert (r.status_code, r.json()["registry"]) == (200, None), r.text  # back to the platform's own


@pytest.mark.parametrize("bad", ["http://10.0.0.5:5000", "10.0.0.5:5000/v2", "10.0.0.5:99999", "a b"])
def test_a_bad_registry_address_is_a_422_naming_registry_and_stores_nothing(api: Api, bad: str) -> None:
    r = _add(api, registry=bad)
    assert r.status_code == 422, r.text
    assert [p["path"] for p in r.json()["error"]["problems"]] == ["registry"]
    assert "host[:port]" in r.json()["error"]["problems"][0]["message"]
    assert api.http.get(f"{V1}/clusters", headers=api.admin).json()["items"] == []
    assert _add(api).status_code == 201
    r = api.http.patch(f"{V1}/clusters/prod", json={"registry": bad}, headers=api.admin)
    assert r.status_code == 422, r.text
    assert api.http.get(f"{V1}/clusters", headers=api.admin).json()["items"][0]["registry"] is None


def test_only_an_admin_sets_a_clusters_registry(api: Api) -> None:
    assert _add(api).status_code == 201
    api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin)
    owner = api.member("shop", "olga", "owner")
    r = api.http.patch(f"{V1}/clusters/prod", json={"registry": "10.6.6.6:5000"}, headers=owner)
    assert r.status_code == 403, r.text


def test_the_registry_address_defaults_to_the_platform_registrys(api: Api) -> None:
    assert _add(api).status_code == 201
    access = ClusterImageAccess(api.cp.ctx.db, _credentials(api), lambda: "127.0.0.1:5000")
    assert access.registry("prod") == "127.0.0.1:5000"
    api.http.patch(f"{V1}/clusters/prod", json={"registry": "10.0.0.5:5000"}, headers=api.admin)
    assert access.registry("prod") == "10.0.0.5:5000"


def _credentials(api: Api) -> PullCredentialService:
    box = api.cp.ctx.secret_box
    assert box is not None
    return PullCredentialService(api.cp.ctx, box)


def test_a_projects_pull_credential_opens_the_registry_token_endpoint_and_nothing_else(api: Api) -> None:
    """The attack: a pull credential lifted from a cluster's Secret is used against the platform API.
    It authenticates, as a viewer of its project, but every operation (reads included) refuses it."""
    api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin)
    login = _credentials(api).ensure("shop")
    stolen = api.headers(login.password)
    assert api.http.get(f"{V1}/whoami", headers=stolen).status_code == 403
    for path in (
        "/projects/shop",
        "/projects/shop/members",
        "/projects/shop/environments",
        "/clusters",
        "/tokens",
    ):
        r = api.http.get(V1 + path, headers=stolen)
        assert r.status_code == 403, (path, r.text)
        assert "'read' scope" in r.json()["error"]["message"]
    r = api.http.post(f"{V1}/tokens", json={"name": "more", "scopes": ["read"]}, headers=stolen)
    assert r.status_code == 403, r.text
    members = api.http.get(f"{V1}/projects/shop/members", headers=api.admin).json()["items"]
    assert {"principal": pull_principal("shop"), "role": "viewer"} in members
    assert Permission.REGISTRY_TOKEN.scope.value == "pull"


def test_a_pull_credential_is_made_once_kept_sealed_and_remade_after_revocation(api: Api) -> None:
    api.http.post(f"{V1}/projects", json={"name": "shop"}, headers=api.admin)
    service = _credentials(api)
    first = service.ensure("shop")
    assert service.ensure("shop") == first
    assert ":" not in first.username  # a docker config's auth is username:password
    with api.cp.ctx.db.transaction() as s:
        (row,) = s.scalars(select(PullCredential)).all()
        assert first.password not in row.secret_ciphertext
        audit = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.project == "shop"))]
        token_id = row.token_id
    assert audit.count("pull-credential.create") == 1
    assert api.http.delete(f"{V1}/tokens/{token_id}", headers=api.admin).status_code == 204
    second = service.ensure("shop")
    assert second.password != first.password
    # the revoked one no longer authenticates at all
    assert api.http.get(f"{V1}/whoami", headers=api.headers(first.password)).status_code == 401
