"""Cosign-compatible image signatures made offline with the platform's signing key.

A signature is cosign's "simple signing" payload — which repository and which manifest digest — signed
with ECDSA P-256 / SHA-256 (DER, base64 in the layer annotation ``dev.cosignproject.cosign/signature``),
stored as the attachment ``sha256-<hex>.sig`` (registry/attach.py). ``cosign verify --key
<data dir>/registry/cosign.pub`` accepts it; ``verify`` here checks the same and says why not.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from yunzhou.build.oci import check_digest
from yunzhou.domain.errors import NotFound, UserError
from yunzhou.registry.attach import SIGNATURE_SUFFIX, Attached, Registry, get_attachment, put_attachment
from yunzhou.registry.tokens import load_or_create_key, write_private

SIGNING_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "cosign.pub"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"


@dataclass
class UnverifiedImage(UserError):
    """The image has no valid platform signature; the message says why."""

    code: str = "unsigned_image"


@dataclass(frozen=True)
class SigningKey:
    """The platform's signing key (``<dir>/signing-key.pem``, 0600, made on first use) and its public
    half in ``<dir>/cosign.pub`` for anyone who verifies with cosign."""

    private: ec.EllipticCurvePrivateKey
    public_path: Path

    @classmethod
    def load(cls, directory: Path) -> SigningKey:
        key = load_or_create_key(directory / SIGNING_KEY_FILE)
        public_path = directory / PUBLIC_KEY_FILE
        if not public_path.exists():
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            write_private(public_path, pem, 0o644)
        return cls(key, public_path)

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()


def payload(repo: str, digest: str, optional: dict[str, Any] | None = None) -> bytes:
    """The simple-signing payload cosign signs (compact JSON, as cosign writes it)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": check_digest(digest)},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign_payload(key: SigningKey, data: bytes) -> str:
    return base64.b64encode(key.private.sign(data, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def sign(
    client: Registry, key: SigningKey, repo: str, digest: str, optional: dict[str, Any] | None = None
) -> str:
    """Sign ``repo@digest`` and push the signature; returns the signature manifest's digest."""
    data = payload(repo, digest, optional)
    layer = Attached(data, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: sign_payload(key, data)})
    return put_attachment(client, repo, digest, SIGNATURE_SUFFIX, [layer])


def check_signature(public: ec.EllipticCurvePublicKey, layer: Attached, repo: str, digest: str) -> None:
    """One signature layer against the key and the image it should be about; raises UnverifiedImage."""
    if layer.media_type != SIMPLE_SIGNING:
        raise UnverifiedImage(
            f"{repo}@{digest}: the signature layer is {layer.media_type!r}, not simple signing"
        )
    try:
        signature = base64.b64decode(layer.annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
        public.verify(signature, layer.data, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        raise UnverifiedImage(f"{repo}@{digest}: the signature does not match the platform's key") from None
    try:
        critical = json.loads(layer.data)["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        signed_repo = critical["identity"]["docker-reference"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        raise UnverifiedImage(
            f"{repo}@{digest}: the signed payload is not a simple-signing document"
        ) from None
    if kind != SIGNATURE_TYPE:
        raise UnverifiedImage(f"{repo}@{digest}: the signed payload's type is {kind!r}")
    if signed_digest != digest:
        raise UnverifiedImage(f"{repo}@{digest}: the signature is for another image ({signed_digest})")
    if signed_repo != repo:
        raise UnverifiedImage(f"{repo}@{digest}: the signature is for another repository ({signed_repo})")


def verify(client: Registry, public: ec.EllipticCurvePublicKey, repo: str, digest: str) -> bool:
    """True when one of the image's signatures is the platform's and about this very image; otherwise
    UnverifiedImage saying why (no signature, a bad one, another image's)."""
    try:
        layers = get_attachment(client, repo, digest, SIGNATURE_SUFFIX)
    except UnverifiedImage:
        raise
    except (UserError, NotFound) as exc:  # no .sig tag (404), or not an attachment
        raise UnverifiedImage(f"{repo}@{digest} is not signed: {exc.message}") from None
    if not layers:
        raise UnverifiedImage(f"{repo}@{digest} is not signed: its signature manifest has no layers")
    reasons = []
    for layer in layers:
        try:
            check_signature(public, layer, repo, digest)
        except UnverifiedImage as exc:
            reasons.append(exc.message)
        else:
            return True
    raise UnverifiedImage("; ".join(reasons))
