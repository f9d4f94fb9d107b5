"""`yunzhou server` runs the registry with the platform as its token issuer, and the REAL registry enforces
what the platform grants: a project's developer pushes and pulls its project's repositories and is refused
another project's; a viewer pulls but cannot push; tokens the platform did not sign, or that expired, are
refused by the registry itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.registry.managed import small_image
from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import UserError
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.tokens import Access, TokenIssuer
from yunzhou.testing.server import ControlPlaneProcess


@dataclass
class World:
    server: ControlPlaneProcess
    registry_url: str
    tokens: dict[str, str]  # principal → platform token
    store: ImageStore
    image: str  # a digest in ``store``

    def client(self, principal: str) -> RegistryClient:
        return RegistryClient(self.registry_url, username=principal, password=self.tokens[principal])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("registry-access")
    with ControlPlaneProcess(tmp / "data") as server:
        address = json.loads((tmp / "data" / "registry" / "address.json").read_text())
        api = httpx.Client(
            base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {server.admin_token}"}
        )
        tokens = {"admin": server.admin_token}
        for project in ("alpha", "beta"):
            assert api.post("/projects", json={"name": project}).status_code == 201
        for principal, project, role in (
            ("dev", "alpha", "developer"),
            ("viewer", "alpha", "viewer"),
            ("beta-dev", "beta", "developer"),
        ):
            assert api.put(f"/projects/{project}/members/{principal}", json={"role": role}).status_code == 200
            r = api.post(
                "/tokens", json={"name": principal, "scopes": ["read", "write"], "principal": principal}
            )
            tokens[principal] = r.json()["token"]
        store = ImageStore(tmp / "store")
        image = small_image(store, tmp, b"hello")
        yield World(server, address["url"], tokens, store, image)
        api.close()


def test_the_server_runs_the_registry_with_token_auth(world: World) -> None:
    r = httpx.get(world.registry_url + "/v2/", timeout=10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(
        f'Bearer realm="{world.server.url}/api/v1/registry/token"'
    )


def test_a_developer_pushes_and_pulls_its_projects_repository(world: World, tmp_path: Path) -> None:
    with world.client("dev") as dev:
        dev.push(world.store, "alpha/app", world.image, tag="v1")
        assert dev.pull("alpha/app", "v1", ImageStore(tmp_path / "pulled")) == world.image


def test_another_projects_repository_is_refused_by_the_registry(world: World) -> None:
    with world.client("beta-dev") as beta:
        beta.push(world.store, "beta/app", world.image, tag="v1")
    with world.client("dev") as dev:
        with pytest.raises(UserError, match="registry refused") as pushed:
            dev.push(world.store, "beta/app", world.image, tag="v2")
        assert pushed.value.code == "denied"
        with pytest.raises(UserError, match="registry refused") as pulled:
            dev.resolve("beta/app", "v1")
        assert pulled.value.code == "denied"
    # and the other way round: beta's credentials do not pull alpha's image
    with world.client("admin") as admin:
        admin.push(world.store, "alpha/app", world.image, tag="v1")
    with world.client("beta-dev") as beta, pytest.raises(UserError, match="registry refused"):
        beta.pull("alpha/app", "v1", ImageStore(world.store.root.parent / "beta-pulled"))


def test_a_viewer_pulls_but_cannot_push(world: World, tmp_path: Path) -> None:
    with world.client("admin") as admin:
        admin.push(world.store, "alpha/app", world.image, tag="v1")
    with world.client("viewer") as viewer:
        assert viewer.resolve("alpha/app", "v1") == world.image
        with pytest.raises(UserError, match="registry refused"):
            viewer.push(world.store, "alpha/viewer-made", world.image, tag="v1")


def test_wrong_credentials_get_no_token(world: World) -> None:
    client = RegistryClient(world.registry_url, username="dev", password="yzt_guessed")
    with client, pytest.raises(UserError, match="turned the credentials down"):
        client.resolve("alpha/app", "v1")


def test_tokens_the_platform_did_not_sign_or_that_expired_are_refused(world: World, tmp_path: Path) -> None:
    with world.client("admin") as admin:
        admin.push(world.store, "alpha/app", world.image, tag="v1")
    pull = [Access("repository", "alpha/app", ("pull",))]
    url = f"{world.registry_url}/v2/alpha/app/manifests/v1"

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.oci.image.manifest.v1+json"}
        return httpx.get(url, headers=headers, timeout=10).status_code

    platform = TokenIssuer(world.server.data_dir / "registry")
    assert status(platform.issue("dev", pull).token) == 200  # the control: the platform's own key
    assert status(TokenIssuer(tmp_path / "impostor").issue("dev", pull).token) == 401  # another key
    expired = TokenIssuer(world.server.data_dir / "registry", clock=lambda: 1_000_000_000.0)
    assert status(expired.issue("dev", pull).token) == 401
    other_service = TokenIssuer(world.server.data_dir / "registry", service="another-registry")
    assert status(other_service.issue("dev", pull).token) == 401
    forged = platform.issue("dev", pull).token.rsplit(".", 1)[0] + "." + "A" * 86  # a made-up signature
    assert status(forged) == 401
