"""Deploy-time pinning against a REAL registry (``docker-registry`` without auth, conftest.py): the platform
registry (here an external one, ``YUNZHOU_REGISTRY_URL``) and a listed external registry resolve tags to
the digests they name now; an unknown tag is a user error naming the container; a registry that does not
answer is a temporary error (503 + Retry-After at the API). The managed registry with token auth is
exercised end to end in tests/integration/k8s/test_cluster_pulls_platform_images.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.registry.conftest import PlainRegistry
from tests.integration.registry.managed import small_image
from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import TemporaryError, UserError
from yunzhou.registry.access import RegistryAccess
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.resolve import Resolver, registry_address
from yunzhou.registry.server import RegistrySettings
from yunzhou.services.image_pinning import ImagePinning
from yunzhou.testing.server import free_port


def score(image: str) -> dict[str, object]:
    return {"metadata": {"name": "web"}, "containers": {"web": {"image": image}}}


def test_tags_resolve_to_what_the_real_registry_names_now(
    plain_registry: PlainRegistry, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path / "store")
    first, second = small_image(store, tmp_path, b"one"), small_image(store, tmp_path, b"two")
    host = plain_registry.url.removeprefix("http://")
    with RegistryClient(plain_registry.url) as client:
        client.push(store, "shop/web", first, tag="1.2")
        client.push(store, "tools/cli", second, tag="3")
    access = RegistryAccess(tmp_path / "data", RegistrySettings(url=plain_registry.url))
    assert registry_address(access) == host
    pinning = ImagePinning.from_env(
        Resolver(access), lambda: registry_address(access), {"YUNZHOU_IMAGE_REGISTRIES": plain_registry.url}
    )
    doc, warnings = pinning.pin("shop", score("shop/web:1.2"))
    assert (doc["containers"]["web"]["image"], warnings) == (f"shop/web@{first}", [])
    doc, _ = pinning.pin("shop", score(f"{host}/shop/web:1.2"))  # written with the registry's address
    assert doc["containers"]["web"]["image"] == f"shop/web@{first}"
    # this host is the platform registry: another project's repository there is refused, listed or not
    for project, image in (("shop", f"{host}/tools/cli:3"), ("bank", f"{host}/shop/web:1.2")):
        with pytest.raises(UserError, match="only its own repositories"):
            pinning.pin(project, score(image))
    with RegistryClient(plain_registry.url) as client:  # the tag moves; the next deploy pins the new image
        client.push(store, "shop/web", second, tag="1.2")
    doc, _ = pinning.pin("shop", score("shop/web:1.2"))
    assert doc["containers"]["web"]["image"] == f"shop/web@{second}"
    with pytest.raises(UserError) as exc:
        pinning.pin("shop", score("shop/web:nope"))
    assert exc.value.problems[0].path == "containers.web.image"
    assert "shop/web:nope" in exc.value.problems[0].message


def test_a_listed_external_registry_is_resolved_there(plain_registry: PlainRegistry, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    digest = small_image(store, tmp_path, b"cli")
    host = plain_registry.url.removeprefix("http://")
    with RegistryClient(plain_registry.url) as client:
        client.push(store, "tools/cli", digest, tag="3")
    access = RegistryAccess(tmp_path / "data", RegistrySettings())  # the managed one, not running
    pinning = ImagePinning.from_env(
        Resolver(access), lambda: registry_address(access), {"YUNZHOU_IMAGE_REGISTRIES": plain_registry.url}
    )
    doc, warnings = pinning.pin("shop", score(f"{host}/tools/cli:3"))
    assert (doc["containers"]["web"]["image"], warnings) == (f"{host}/tools/cli@{digest}", [])


def test_an_unreachable_registry_is_a_temporary_error_and_a_platform_tag_without_registry_too(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    access = RegistryAccess(tmp_path / "data", RegistrySettings())  # the managed one, not running
    pinning = ImagePinning.from_env(
        Resolver(access), lambda: registry_address(access), {"YUNZHOU_IMAGE_REGISTRIES": closed}
    )
    with pytest.raises(TemporaryError) as exc:
        pinning.pin("shop", score(closed.removeprefix("http://") + "/tools/cli:3"))
    assert exc.value.problems[0].path == "containers.web.image"
    assert exc.value.retry_after >= 5
    with pytest.raises(TemporaryError):
        pinning.pin("shop", score("shop/web:1.2"))
