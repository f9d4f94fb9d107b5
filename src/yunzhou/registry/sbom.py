"""An image's SBOM, stored beside it as the attachment ``sha256-<hex>.sbom`` (cosign's ``attach sbom``
convention). The builder makes the document; this only stores and fetches it."""

from __future__ import annotations

from dataclasses import dataclass

from yunzhou.domain.errors import UserError
from yunzhou.registry.attach import SBOM_SUFFIX, Attached, Registry, get_attachment, put_attachment

SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"


@dataclass(frozen=True)
class Sbom:
    document: bytes
    media_type: str


def attach_sbom(
    client: Registry, repo: str, digest: str, document: bytes, media_type: str = SPDX_JSON
) -> str:
    """Store ``document`` as the SBOM of ``repo@digest`` (replacing an earlier one); returns the
    attachment manifest's digest."""
    return put_attachment(client, repo, digest, SBOM_SUFFIX, [Attached(document, media_type, {})])


def fetch_sbom(client: Registry, repo: str, digest: str) -> Sbom:
    """The SBOM of ``repo@digest`` (the client's NotFound/UserError names the tag when there is none)."""
    layers = get_attachment(client, repo, digest, SBOM_SUFFIX)
    if len(layers) != 1:
        raise UserError(f"{repo}@{digest}: its SBOM attachment has {len(layers)} documents, not one")
    return Sbom(layers[0].data, layers[0].media_type)
