"""Signatures (cosign's simple signing, offline platform key) and SBOMs attached by tag, against a real
docker-registry."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.registry.managed import Managed, run_managed, small_image
from yunzhou.build.oci import ImageStore
from yunzhou.registry.attach import SIGNATURE_SUFFIX, Attached, attachment_tag, get_attachment, put_attachment
from yunzhou.registry.sbom import SPDX_JSON, attach_sbom, fetch_sbom
from yunzhou.registry.signing import (
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    SigningKey,
    UnverifiedImage,
    payload,
    sign,
    verify,
)


@pytest.fixture
def managed_registry(tmp_path: Path) -> Iterator[Managed]:
    with run_managed(tmp_path) as registry:
        yield registry


def pushed(managed: Managed, tmp_path: Path, content: bytes, repo: str = "shop/web") -> str:
    store = ImageStore(tmp_path / "store")
    digest = small_image(store, tmp_path, content)
    managed.client.push(store, repo, digest, tag="latest")
    return digest


def test_the_signing_key_is_made_once_private_with_a_public_half(tmp_path: Path) -> None:
    key = SigningKey.load(tmp_path / "keys")
    again = SigningKey.load(tmp_path / "keys")
    assert key.public.public_numbers() == again.public.public_numbers()
    assert stat.S_IMODE((tmp_path / "keys" / "signing-key.pem").stat().st_mode) == 0o600
    assert key.public_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_sign_then_verify(managed_registry: Managed, tmp_path: Path) -> None:
    digest = pushed(managed_registry, tmp_path, b"v1")
    key = SigningKey.load(managed_registry.data_dir / "registry")
    sign(managed_registry.client, key, "shop/web", digest)
    assert verify(managed_registry.client, key.public, "shop/web", digest) is True
    # what cosign expects: one simple-signing layer with the signature annotation, tag sha256-<hex>.sig
    [layer] = get_attachment(managed_registry.client, "shop/web", digest, SIGNATURE_SUFFIX)
    assert layer.media_type == SIMPLE_SIGNING
    assert json.loads(layer.data)["critical"]["image"]["docker-manifest-digest"] == digest
    assert attachment_tag(digest, ".sig") in managed_registry.client.tags("shop/web")


def test_an_unsigned_image_does_not_verify(managed_registry: Managed, tmp_path: Path) -> None:
    digest = pushed(managed_registry, tmp_path, b"v1")
    key = SigningKey.load(tmp_path / "keys")
    with pytest.raises(UnverifiedImage, match="is not signed"):
        verify(managed_registry.client, key.public, "shop/web", digest)


def test_a_tampered_signature_does_not_verify(managed_registry: Managed, tmp_path: Path) -> None:
    digest = pushed(managed_registry, tmp_path, b"v1")
    key = SigningKey.load(tmp_path / "keys")
    data = payload("shop/web", digest)
    forged = SigningKey.load(tmp_path / "other").private.sign(data, ec.ECDSA(hashes.SHA256()))
    for signature in (base64.b64encode(forged).decode(), "AAAA", "not base64!"):
        layer = Attached(data, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: signature})
        put_attachment(managed_registry.client, "shop/web", digest, SIGNATURE_SUFFIX, [layer])
        with pytest.raises(UnverifiedImage, match="does not match the platform's key"):
            verify(managed_registry.client, key.public, "shop/web", digest)


def test_a_signature_of_another_image_does_not_verify(managed_registry: Managed, tmp_path: Path) -> None:
    client = managed_registry.client
    key = SigningKey.load(tmp_path / "keys")
    first = pushed(managed_registry, tmp_path, b"v1")
    second = pushed(managed_registry, tmp_path, b"v2")
    sign(client, key, "shop/web", first)
    # the first image's (valid) signature copied to the second's tag: it is about another digest
    [layer] = get_attachment(client, "shop/web", first, SIGNATURE_SUFFIX)
    put_attachment(client, "shop/web", second, SIGNATURE_SUFFIX, [layer])
    with pytest.raises(UnverifiedImage, match="for another image"):
        verify(client, key.public, "shop/web", second)
    # and signed for another repository
    other = pushed(managed_registry, tmp_path, b"v1", repo="shop/api")
    put_attachment(client, "shop/api", other, SIGNATURE_SUFFIX, [layer])
    with pytest.raises(UnverifiedImage, match="for another repository"):
        verify(client, key.public, "shop/api", other)


def test_sbom_round_trip(managed_registry: Managed, tmp_path: Path) -> None:
    digest = pushed(managed_registry, tmp_path, b"v1")
    document = json.dumps({"spdxVersion": "SPDX-2.3", "packages": [{"name": "flask"}]}).encode()
    attach_sbom(managed_registry.client, "shop/web", digest, document)
    sbom = fetch_sbom(managed_registry.client, "shop/web", digest)
    assert (sbom.document, sbom.media_type) == (document, SPDX_JSON)
    assert attachment_tag(digest, ".sbom") in managed_registry.client.tags("shop/web")
