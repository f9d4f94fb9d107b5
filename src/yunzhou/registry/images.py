"""What a repository holds: its images with size, push time, tags and whether they are signed or have an
SBOM. Attachments (``.sig``/``.sbom`` manifests) are not images: they are reported on their image.

The distribution API lists tags only; an image pushed by digest (as builds push) has no tag. For the
managed registry the storage is on this machine, so every manifest revision and the time it was pushed
(the revision link's mtime) are read from there; for an external registry, the tagged images only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunzhou.build.oci import check_digest
from yunzhou.domain.errors import UserError
from yunzhou.registry.attach import SIGNATURE_SUFFIX, SUBJECT_ANNOTATION, attached_digest
from yunzhou.registry.client import RegistryClient

_V2 = ("docker", "registry", "v2")


@dataclass(frozen=True)
class StoredImage:
    repository: str
    digest: str
    size: int  # manifest + config + layers (an index: + its manifests' sizes as listed)
    pushed_at: dt.datetime | None
    tags: tuple[str, ...]
    signed: bool  # has a .sig attachment (verify it with registry.signing.verify)
    sbom: bool
    attachment_of: str | None = None  # set on a .sig/.sbom manifest: the image it belongs to

    def view(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "size": self.size,
            "pushed_at": self.pushed_at,
            "tags": list(self.tags),
            "signed": self.signed,
            "sbom": self.sbom,
        }


def revisions(storage: Path, repository: str) -> Iterator[tuple[str, dt.datetime]]:
    """(digest, pushed at) of every manifest revision of ``repository`` in a filesystem-driver storage."""
    folder = storage.joinpath(
        *_V2, "repositories", *repository.split("/"), "_manifests", "revisions", "sha256"
    )
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        link = entry / "link"
        try:
            mtime = link.stat().st_mtime
        except FileNotFoundError:  # deleted (the link goes first) or being written
            continue
        yield check_digest("sha256:" + entry.name), dt.datetime.fromtimestamp(mtime, dt.UTC)


def blobs_bytes(storage: Path) -> int:
    """Bytes of blob data in the storage (what garbage collection frees)."""
    folder = storage.joinpath(*_V2, "blobs")
    return sum(p.stat().st_size for p in folder.rglob("data") if p.is_file()) if folder.is_dir() else 0


def _size(doc: dict[str, Any], body_size: int) -> int:
    parts = [doc.get("config"), *doc.get("layers", []), *doc.get("manifests", [])]
    return body_size + sum(int(p.get("size", 0)) for p in parts if isinstance(p, dict))


def list_images(client: RegistryClient, repository: str, storage: Path | None = None) -> list[StoredImage]:
    """The repository's images (and, marked ``attachment_of``, its attachment manifests), newest first."""
    tags = client.tags(repository)
    by_digest: dict[str, list[str]] = {}
    signed: set[str] = set()
    with_sbom: set[str] = set()
    for tag in tags:
        subject = attached_digest(tag)
        if subject is not None:
            (signed if tag.endswith(SIGNATURE_SUFFIX) else with_sbom).add(subject)
        by_digest.setdefault(client.resolve(repository, tag), []).append(tag)
    pushed: dict[str, dt.datetime | None] = dict.fromkeys(by_digest)
    if storage is not None:
        pushed.update(revisions(storage, repository))
    found = []
    for digest, when in pushed.items():
        try:
            manifest = client.get_manifest(repository, digest)
        except UserError as exc:
            if exc.code == "not_found":  # deleted meanwhile
                continue
            raise
        doc = manifest.json()
        annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
        subject = (annotations or {}).get(SUBJECT_ANNOTATION)
        tagged = tuple(sorted(by_digest.get(digest, [])))
        if subject is None:  # an older attachment (or cosign's own) is known by its tag
            subject = next((s for t in tagged if (s := attached_digest(t)) is not None), None)
        found.append(
            StoredImage(
                repository=repository,
                digest=digest,
                size=_size(doc, len(manifest.body)),
                pushed_at=when,
                tags=tagged,
                signed=digest in signed,
                sbom=digest in with_sbom,
                attachment_of=str(subject) if subject is not None else None,
            )
        )
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    found.sort(key=lambda image: (image.pushed_at or epoch, image.digest), reverse=True)
    return found
