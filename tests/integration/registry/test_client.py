"""The registry client against a real docker-registry: push, resolve, pull, tags, manifests, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from yunzhou.build.oci import MEDIA_CONFIG, MEDIA_MANIFEST, ImageConfig, ImageRef, ImageStore
from yunzhou.domain.errors import PermanentError, TemporaryError, UserError
from yunzhou.registry.client import RegistryClient
from yunzhou.testing.server import free_port

from .conftest import PlainRegistry


@pytest.fixture
def client(plain_registry: PlainRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(plain_registry.url) as c:
        yield c


def build_image(store: ImageStore, src: Path, payload: bytes = b"") -> ImageRef:
    (src / "app").mkdir(parents=True)
    (src / "app" / "main.py").write_text("print('hello')\n")
    (src / "app" / "blob.bin").write_bytes(payload or os.urandom(256 << 10))
    (src / "base").mkdir()
    (src / "base" / "os-release").write_text("ID=debian\n")
    base = store.add_layer_from_dir(src / "base", dest="etc")
    app = store.add_layer_from_dir(src / "app", dest="app", owner=(0, 0))
    return store.write_image(ImageConfig(cmd=("python3", "main.py"), workdir="/app"), [base, app])


def test_push_resolve_pull_and_push_again(client: RegistryClient, tmp_path: Path) -> None:
    source = ImageStore(tmp_path / "source")
    image = build_image(source, tmp_path / "src")

    first = client.push(source, "shop/web", image.digest, tag="v1")
    blobs = {image.config_digest, *(layer.digest for layer in image.layers)}
    assert set(first.uploaded) == blobs
    assert first.skipped == ()
    assert client.resolve("shop/web", "v1") == image.digest
    assert client.resolve("shop/web", image.digest) == image.digest
    assert client.tags("shop/web") == ["v1"]

    target = ImageStore(tmp_path / "target")
    assert client.pull("shop/web", "v1", target, name="shop/web:v1") == image.digest
    assert target.image(image.digest) == image
    assert target.resolve("shop/web:v1") == image.digest
    for digest in blobs | {image.digest}:
        assert target.blob_path(digest).read_bytes() == source.blob_path(digest).read_bytes()

    again = client.push(source, "shop/web", image.digest, tag="v2")
    assert again.uploaded == ()
    assert set(again.skipped) == blobs
    assert sorted(client.tags("shop/web")) == ["v1", "v2"]


def test_large_blobs_go_up_in_chunks(plain_registry: PlainRegistry, tmp_path: Path) -> None:
    source = ImageStore(tmp_path / "source")
    image = build_image(source, tmp_path / "src", payload=os.urandom(700 << 10))
    assert max(layer.size for layer in image.layers) > 3 * (200 << 10)
    with RegistryClient(plain_registry.url, chunk_size=200 << 10) as chunked:
        chunked.push(source, "shop/big", image.digest, tag="latest")
    with RegistryClient(plain_registry.url) as plain:
        target = ImageStore(tmp_path / "target")
        assert plain.pull("shop/big", "latest", target) == image.digest
    assert target.image(image.digest) == image


def test_cross_repository_mount_skips_the_upload(client: RegistryClient, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = build_image(store, tmp_path / "src")
    client.push(store, "shop/web", image.digest)
    result = client.push(store, "shop/worker", image.digest, tag="v1", mount_from="shop/web")
    assert result.uploaded == ()
    assert client.resolve("shop/worker", "v1") == image.digest


def test_manifests_of_any_media_type_round_trip(client: RegistryClient, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = build_image(store, tmp_path / "src")
    client.push(store, "shop/web", image.digest, tag="v1")
    payload = b'{"critical":{"image":{"docker-manifest-digest":"%s"}}}' % image.digest.encode()
    payload_digest = client.put_blob("shop/web", payload)
    config_digest = client.put_blob("shop/web", b"{}")
    signature = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_digest,
                "size": len(payload),
                "annotations": {"dev.cosignproject.cosign/signature": "c2ln"},
            }
        ],
    }
    tag = image.digest.replace(":", "-") + ".sig"
    digest = client.put_manifest("shop/web", tag, signature)
    fetched = client.get_manifest("shop/web", tag)
    assert fetched.digest == digest
    assert fetched.json() == signature
    assert fetched.media_type == MEDIA_MANIFEST
    assert client.get_blob("shop/web", payload_digest) == payload


def test_delete_then_the_reference_is_not_found(client: RegistryClient, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = build_image(store, tmp_path / "src")
    client.push(store, "shop/web", image.digest, tag="v1")
    client.delete("shop/web", image.digest)
    with pytest.raises(UserError, match=r"shop/web:v1 not found in the registry") as caught:
        client.resolve("shop/web", "v1")
    assert caught.value.code == "not_found"
    with pytest.raises(UserError, match=r"shop/web@sha256:\w+ not found"):
        client.delete("shop/web", image.digest)


def test_unknown_names_and_bad_input_are_user_errors(client: RegistryClient) -> None:
    with pytest.raises(UserError, match=r"shop/nothing:v1 not found") as caught:
        client.resolve("shop/nothing", "v1")
    assert caught.value.code == "not_found"
    assert client.tags("shop/nothing") == []
    with pytest.raises(UserError, match="is not a repository name"):
        client.resolve("Shop/../x", "v1")
    with pytest.raises(UserError, match="is not a tag"):
        client.resolve("shop/web", "v1/../../x")


def test_a_corrupt_blob_in_the_registry_is_never_stored(
    client: RegistryClient, plain_registry: PlainRegistry, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path / "store")
    image = build_image(store, tmp_path / "src")
    client.push(store, "shop/web", image.digest, tag="v1")
    layer = image.layers[-1].digest.removeprefix("sha256:")
    data = plain_registry.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF
    data.write_bytes(bytes(content))
    target = ImageStore(tmp_path / "target")
    with pytest.raises(PermanentError, match="expected " + image.layers[-1].digest):
        client.pull("shop/web", "v1", target)
    assert not target.has(image.layers[-1].digest)
    assert not target.has(image.digest)


def test_a_registry_that_is_not_there_is_a_temporary_error() -> None:
    with (
        RegistryClient(f"http://127.0.0.1:{free_port()}", timeout=5.0) as nobody,
        pytest.raises(TemporaryError, match="shop/web:v1"),
    ):
        nobody.resolve("shop/web", "v1")
