"""The OCI image format as data: media types, descriptors, names and digests, the image config document.

Pure: no I/O. ``oci`` (the store on disk) builds on it and re-exports what other packages use.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import UserError

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, MEDIA_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST})

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
INDEX_LIMIT = 16 << 20  # an index.json or manifest larger than this is not one we wrote or can trust
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class Layer:
    digest: str  # of the compressed blob
    diff_id: str  # of the uncompressed tar
    size: int  # of the compressed blob
    media_type: str = MEDIA_LAYER_GZIP


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ImageRef:
    digest: str  # of the manifest
    config_digest: str
    size: int  # manifest + config + layers
    layers: tuple[Layer, ...]


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise UserError(f"{digest!r} is not a sha256 digest (sha256:<64 lowercase hex>)")
    return digest


def check_ref_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 255 or not _REF_NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a valid image name: use letters, digits and . _ - : @ + between them, "
            "components separated by /, at most 255 characters"
        )
    return name


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def host_architecture() -> str:
    """This machine's architecture in the OCI vocabulary (``amd64``, ``arm64`` …)."""
    return _ARCH.get(platform.machine(), platform.machine())


def platform_manifest(index: Mapping[str, Any]) -> str | None:
    """The digest of the linux image for this machine's architecture in an index document."""
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == host_architecture():
            return check_digest(str(entry.get("digest")))
    return None


def entry_name(entry: Mapping[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def render_config(base: Mapping[str, Any], config: ImageConfig) -> dict[str, Any]:
    """The runtime config: ``base``'s values where ``config`` leaves a field empty (as FROM does)."""
    env = dict(item.split("=", 1) for item in base.get("Env") or [] if "=" in item)
    env.update(config.env)
    labels = {**(base.get("Labels") or {}), **config.labels}
    ports = set(base.get("ExposedPorts") or {}) | {f"{p}/tcp" for p in config.exposed_ports}
    if config.entrypoint:
        entrypoint, cmd = list(config.entrypoint), list(config.cmd)
    else:
        entrypoint = list(base.get("Entrypoint") or [])
        cmd = list(config.cmd) or list(base.get("Cmd") or [])
    doc: dict[str, Any] = {
        "Entrypoint": entrypoint,
        "Cmd": cmd,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "User": config.user or base.get("User") or "",
        "WorkingDir": config.workdir or base.get("WorkingDir") or "",
        "Labels": labels,
        "ExposedPorts": {p: {} for p in sorted(ports)},
    }
    return {k: v for k, v in doc.items() if v}
