"""An environment that requires signed images, against a REAL server and its REAL registry: an image a
developer pushed with a registry token is refused there (422 naming the container, no release, the running
release stays); an image the build worker pushed — signed with the platform key — deploys; a signature
a developer forged (a valid signature over another payload, another image's signature) is refused; a
rollback to an unsigned release is refused once the policy is on; unsigned images deploy where it is off;
and a real ``deploy --source`` (the static stack, built by the server's worker) is released there."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.registry.managed import small_image
from yunzhou.build.oci import ImageStore
from yunzhou.reconcile.build_image import registry_pusher
from yunzhou.reconcile.builds import BuiltImage
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.attach import SIGNATURE_SUFFIX, Attached, get_attachment, put_attachment
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.sbom import fetch_sbom
from yunzhou.registry.server import RegistrySettings
from yunzhou.registry.signing import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, SigningKey, payload, verify
from yunzhou.testing.server import ControlPlaneProcess

SIGNED_ENV = "/projects/alpha/environments/prod"


@dataclass
class World:
    server: ControlPlaneProcess
    api: httpx.Client  # admin
    registry_url: str
    dev_token: str
    store: ImageStore
    tmp: Path

    def dev_registry(self) -> RegistryClient:
        """The registry as a developer of project alpha reaches it: their platform token."""
        return RegistryClient(self.registry_url, username="dev", password=self.dev_token)

    def image(self, content: bytes) -> str:
        return small_image(self.store, self.tmp, content)

    def build_push(self, repo: str, digest: str) -> None:
        """What the server's build worker does after a build: push, attach the SBOM, sign."""
        access = RegistryAccess(self.server.data_dir, RegistrySettings())
        push = registry_pusher(self.store, access.client, access.root)
        project, app = repo.split("/")
        lines: list[str] = []
        push(
            project,
            app,
            BuiltImage(digest=digest, stack="python", sbom=b'{"spdxVersion":"SPDX-2.3"}'),
            lines.append,
        )
        assert any("signed" in line for line in lines), lines


def deploy(api: httpx.Client, env: str, image: str, app: str = "web") -> httpx.Response:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": app},
        "containers": {"web": {"image": image}},
    }
    # replicas 0: the policy is decided at the release; nothing needs to run
    return api.post(f"{env}/deployments", json={"score": score, "settings": {"replicas": 0}})


def releases(api: httpx.Client, env: str, app: str = "web") -> list[dict[str, Any]]:
    r = api.get(f"{env}/apps/{app}/releases")
    return [] if r.status_code == 404 else r.json()["items"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("signed-envs")
    with ControlPlaneProcess(tmp / "data") as server:
        address = json.loads((tmp / "data" / "registry" / "address.json").read_text())
        api = httpx.Client(
            base_url=server.url + "/api/v1",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=60,
        )
        assert api.post("/projects", json={"name": "alpha"}).status_code == 201
        assert api.put("/projects/alpha/members/dev", json={"role": "developer"}).status_code == 200
        r = api.post("/tokens", json={"name": "dev", "scopes": ["read", "write"], "principal": "dev"})
        created = api.post(
            "/projects/alpha/environments", json={"name": "prod", "require_signed_images": True}
        )
        assert created.status_code == 201, created.text
        assert (created.json()["require_signed_images"], created.json()["egress"]) == (True, True)
        for env in ("dev", "stage"):
            assert api.post("/projects/alpha/environments", json={"name": env}).status_code == 201
        yield World(server, api, address["url"], r.json()["token"], ImageStore(tmp / "store"), tmp)
        api.close()


def test_an_image_a_developer_pushed_is_refused_in_a_signed_environment_and_deploys_elsewhere(
    world: World,
) -> None:
    digest = world.image(b"pushed by hand")
    with world.dev_registry() as dev:
        dev.push(world.store, "alpha/web", digest, tag="v1")
    for image in ("alpha/web:v1", f"alpha/web@{digest}"):
        r = deploy(world.api, SIGNED_ENV, image)
        assert r.status_code == 422, r.text
        problem = r.json()["error"]["problems"][0]
        assert problem["path"] == "containers.web.image"
        assert "is not signed" in problem["message"], problem
    assert releases(world.api, SIGNED_ENV) == []  # nothing was written
    r = deploy(world.api, "/projects/alpha/environments/dev", "alpha/web:v1")
    assert r.status_code == 201, r.text  # no policy there


def test_an_image_the_platform_built_and_signed_deploys_and_an_unsigned_one_leaves_it_running(
    world: World,
) -> None:
    built = world.image(b"built by the platform")
    world.build_push("alpha/api", built)
    with world.dev_registry() as dev:  # the SBOM is attached once, beside the signature
        assert fetch_sbom(dev, "alpha/api", built).document.startswith(b'{"spdxVersion"')
    r = deploy(world.api, SIGNED_ENV, f"alpha/api@{built}", app="api")
    assert r.status_code == 201, r.text
    assert r.json()["release"]["number"] == 1
    unsigned = world.image(b"unsigned next version")
    with world.dev_registry() as dev:
        dev.push(world.store, "alpha/api", unsigned, tag="v2")
    r = deploy(world.api, SIGNED_ENV, "alpha/api:v2", app="api")
    assert r.status_code == 422, r.text
    assert [x["number"] for x in releases(world.api, SIGNED_ENV, "api")] == [1]
    assert world.api.get(f"{SIGNED_ENV}/apps/api").json()["desired_release"] == 1


def test_a_forged_signature_is_refused(world: World) -> None:
    signed = world.image(b"signed one")
    world.build_push("alpha/forged", signed)
    target = world.image(b"the developer's own")
    with world.dev_registry() as dev:
        dev.push(world.store, "alpha/forged", target, tag="mine")
        [genuine] = get_attachment(dev, "alpha/forged", signed, SIGNATURE_SUFFIX)
        # 1. the platform's valid signature (of the signed image) over a payload naming the developer's
        lie = payload("alpha/forged", target)
        put_attachment(
            dev,
            "alpha/forged",
            target,
            SIGNATURE_SUFFIX,
            [Attached(lie, SIMPLE_SIGNING, genuine.annotations)],
        )
    r = deploy(world.api, SIGNED_ENV, f"alpha/forged@{target}", app="forged")
    assert r.status_code == 422, r.text
    assert "does not match the platform's key" in r.json()["error"]["problems"][0]["message"]
    with world.dev_registry() as dev:  # 2. the signed image's whole signature copied as the target's
        put_attachment(dev, "alpha/forged", target, SIGNATURE_SUFFIX, [genuine])
    r = deploy(world.api, SIGNED_ENV, f"alpha/forged@{target}", app="forged")
    assert r.status_code == 422, r.text
    assert "for another image" in r.json()["error"]["problems"][0]["message"]
    # 3. a signature by a key that is not the platform's (base64 of garbage in the annotation)
    with world.dev_registry() as dev:
        bad = Attached(lie, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: "MEUCIQ=="})
        put_attachment(dev, "alpha/forged", target, SIGNATURE_SUFFIX, [bad])
    r = deploy(world.api, SIGNED_ENV, f"alpha/forged@{target}", app="forged")
    assert r.status_code == 422, r.text
    assert releases(world.api, SIGNED_ENV, "forged") == []


def test_a_rollback_to_an_unsigned_release_is_refused_once_the_policy_is_on(world: World) -> None:
    stage = "/projects/alpha/environments/stage"
    unsigned, signed = world.image(b"stage unsigned"), world.image(b"stage signed")
    with world.dev_registry() as dev:
        dev.push(world.store, "alpha/svc", unsigned, tag="old")
    world.build_push("alpha/svc", signed)
    assert deploy(world.api, stage, "alpha/svc:old", app="svc").status_code == 201
    assert deploy(world.api, stage, f"alpha/svc@{signed}", app="svc").status_code == 201
    r = world.api.patch(stage, json={"require_signed_images": True})
    assert r.status_code == 200, r.text
    assert r.json()["require_signed_images"] is True
    r = world.api.post(f"{stage}/apps/svc/rollback", json={"to": 1})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["problems"][0]["path"] == "containers.web.image"
    assert world.api.get(f"{stage}/apps/svc").json()["desired_release"] == 2
    r = world.api.patch(stage, json={})  # nothing to change: 422 naming the field
    assert r.status_code == 422
    assert world.api.patch(stage, json={"require_signed_images": False}).status_code == 200
    assert world.api.post(f"{stage}/apps/svc/rollback", json={"to": 1}).status_code == 201


def test_a_source_deploy_is_built_signed_and_released_in_the_signed_environment(
    world: World, tmp_path: Path
) -> None:
    """The whole path: upload → the server's build worker builds (static stack) → pushes, attaches the
    SBOM and signs → the release passes the signature check of the signed-only environment."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>signed site</h1>\n")
    (site / "score.yaml").write_text(
        "apiVersion: score.dev/v1b1\nmetadata:\n  name: site\ncontainers:\n  web:\n    image: .\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "yunzhou", "deploy", "alpha/prod", "-f", str(site / "score.yaml"),
         "--source", str(site), "--wait"],
        env=world.server.client_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [release] = releases(world.api, SIGNED_ENV, "site")
    repo, _, digest = release["image"].partition("@")
    assert repo == "alpha/site"
    key = SigningKey.load(world.server.data_dir / "registry")
    with world.dev_registry() as dev:
        assert verify(dev, key.public, repo, digest)  # what cosign verify --key cosign.pub checks
        assert fetch_sbom(dev, repo, digest).media_type == "application/spdx+json"


def test_the_cli_sets_and_shows_the_policies(world: World) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "yunzhou", *args],
            env=world.server.client_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    created = cli("env", "create", "alpha/cli", "--require-signed-images", "--no-egress")
    assert "signed images only, no egress" in created, created
    assert "Egress" in cli("env", "show", "alpha/cli")
    cli("env", "set", "alpha/cli", "--allow-unsigned-images", "--egress")
    shown = json.loads(cli("env", "show", "alpha/cli", "-o", "json"))
    assert (shown["require_signed_images"], shown["egress"]) == (False, True)
    refused = subprocess.run(
        [sys.executable, "-m", "yunzhou", "env", "set", "alpha/cli"],
        env=world.server.client_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "--require-signed-images" in refused.stderr + refused.stdout
