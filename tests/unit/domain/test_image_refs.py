"""Image references and registry addresses: parsing, which registry a reference names, pinned forms."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.image_refs import (
    ImageReference,
    check_registry_address,
    container_images,
    is_platform_reference,
    parse_reference,
    pinned_image,
)

D = "sha256:" + "0f" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nginx:1.25", ImageReference(None, "nginx", "1.25")),
        ("shop/web:1.2", ImageReference(None, "shop/web", "1.2")),
        ("10.0.0.5:5000/shop/web:1", ImageReference("10.0.0.5:5000", "shop/web", "1")),
        ("localhost/web", ImageReference("localhost", "web")),
        ("registry.test/web:1", ImageReference("registry.test", "web", "1")),
        (f"shop/web@{D}", ImageReference(None, "shop/web", None, D)),
        ("[::1]:5000/a/b:1", ImageReference("[::1]:5000", "a/b", "1")),
    ],
)
def test_references_parse(value: str, expected: ImageReference) -> None:
    assert parse_reference(value) == expected
    assert str(expected) == value


@pytest.mark.parametrize("value", ["Shop/web:1", "web@sha256:short", "web:-bad", "a//b", "http://x/y:1"])
def test_bad_references_name_the_field(value: str) -> None:
    with pytest.raises(UserError) as exc:
        parse_reference(value, "containers.web.image")
    assert exc.value.problems[0].path == "containers.web.image"


@pytest.mark.parametrize("value", ["10.0.0.5:5000", "registry.example.com", "localhost:5000", "[::1]:5000"])
def test_registry_addresses(value: str) -> None:
    assert check_registry_address(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "http://10.0.0.5:5000",
        "10.0.0.5:5000/v2",
        "user@host",
        "::1",
        "host:0",
        "host:65536",
        "a_b",
        "",
        "x y",
    ],
)
def test_registry_addresses_refused_name_the_field(value: str) -> None:
    with pytest.raises(UserError, match="host\\[:port\\]") as exc:
        check_registry_address(value, "registry")
    assert exc.value.problems[0].path == "registry"


def test_which_references_name_the_platform_registry() -> None:
    assert is_platform_reference(parse_reference("shop/web:1"), "shop", "127.0.0.1:5000")
    assert is_platform_reference(parse_reference("127.0.0.1:5000/shop/web:1"), "shop", "127.0.0.1:5000")
    assert not is_platform_reference(parse_reference("other/web:1"), "shop", "127.0.0.1:5000")  # Docker Hub's
    assert not is_platform_reference(parse_reference("shop:1"), "shop", "127.0.0.1:5000")
    assert not is_platform_reference(parse_reference("registry.test/shop/web:1"), "shop", "127.0.0.1:5000")


def test_only_a_pinned_platform_image_is_a_releases_image() -> None:
    assert pinned_image(f"shop/web@{D}") == f"shop/web@{D}"
    assert pinned_image("web=nginx:1.25") is None
    assert pinned_image("shop/web:1") is None
    assert pinned_image(None) is None


def test_the_built_image_goes_to_dot_containers_or_the_only_one() -> None:
    built = f"shop/web@{D}"
    assert container_images({"web": "python:3"}, built) == {"web": built}
    assert container_images({"web": ".", "db": "redis:7"}, built) == {"web": built, "db": "redis:7"}
    assert container_images({"web": "x:1", "db": "redis:7"}, built) == {"web": "x:1", "db": "redis:7"}
    assert container_images({"web": "x:1"}, None) == {"web": "x:1"}
