"""Artifacts attached to an image by tag, the way cosign does it on registries without the referrers API
(distribution 2.8): ``sha256-<hex>.sig`` holds the signatures, ``sha256-<hex>.sbom`` the SBOM. Each is an
OCI manifest whose layers are the attached documents (small: they are held in memory)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from yunzhou.build.oci import MEDIA_CONFIG, MEDIA_MANIFEST, canonical_json, check_digest
from yunzhou.domain.errors import UserError
from yunzhou.registry.client import Manifest

# on the attachment's manifest: the image it belongs to. It makes each attachment manifest unique (two
# images with the same SBOM would otherwise share one manifest, and deleting one image's would untag both)
SUBJECT_ANNOTATION = "dev.yunzhou.attachment.subject"
SIGNATURE_SUFFIX = ".sig"
SBOM_SUFFIX = ".sbom"


class Registry(Protocol):
    """What attaching needs of ``registry.client.RegistryClient``."""

    def put_blob(self, repo: str, data: bytes) -> str: ...

    def get_blob(self, repo: str, digest: str) -> bytes: ...

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str: ...

    def get_manifest(self, repo: str, reference: str) -> Manifest: ...


@dataclass(frozen=True)
class Attached:
    """One layer of an attachment: its bytes, media type and annotations."""

    data: bytes
    media_type: str
    annotations: Mapping[str, str]


def attachment_tag(digest: str, suffix: str) -> str:
    """``sha256:abc…`` → ``sha256-abc….sig`` (cosign's convention)."""
    return check_digest(digest).replace(":", "-", 1) + suffix


def attached_digest(tag: str) -> str | None:
    """The image digest an attachment tag belongs to, or None for any other tag."""
    for suffix in (SIGNATURE_SUFFIX, SBOM_SUFFIX):
        if tag.startswith("sha256-") and tag.endswith(suffix):
            digest = tag.removesuffix(suffix).replace("-", ":", 1)
            try:
                return check_digest(digest)
            except UserError:
                return None
    return None


def put_attachment(client: Registry, repo: str, digest: str, suffix: str, layers: Sequence[Attached]) -> str:
    """Push ``layers`` as the attachment ``suffix`` of ``repo@digest`` (replacing an earlier one);
    returns the attachment manifest's digest. The config is cosign's: an empty image whose diff ids are
    the layers' digests."""
    descriptors = []
    for layer in layers:
        descriptor: dict[str, Any] = {
            "mediaType": layer.media_type,
            "size": len(layer.data),
            "digest": client.put_blob(repo, layer.data),
        }
        if layer.annotations:
            descriptor["annotations"] = dict(layer.annotations)
        descriptors.append(descriptor)
    zero = "0001-01-01T00:00:00Z"
    config = canonical_json(
        {
            "architecture": "",
            "config": {},
            "created": zero,
            "history": [{"created": zero}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "size": len(config), "digest": client.put_blob(repo, config)},
        "layers": descriptors,
        "annotations": {SUBJECT_ANNOTATION: digest},
    }
    return client.put_manifest(repo, attachment_tag(digest, suffix), canonical_json(manifest), MEDIA_MANIFEST)


def get_attachment(client: Registry, repo: str, digest: str, suffix: str) -> list[Attached]:
    """The layers of the attachment ``suffix`` of ``repo@digest`` (the client raises UserError naming
    the tag when there is none); each layer's bytes are checked against its digest by the client."""
    manifest = client.get_manifest(repo, attachment_tag(digest, suffix)).json()
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise UserError(f"{repo}: the {suffix} attachment of {digest} is not a manifest with layers")
    return [
        Attached(
            data=client.get_blob(repo, check_digest(str(layer.get("digest")))),
            media_type=str(layer.get("mediaType", "")),
            annotations={str(k): str(v) for k, v in (layer.get("annotations") or {}).items()},
        )
        for layer in layers
    ]
