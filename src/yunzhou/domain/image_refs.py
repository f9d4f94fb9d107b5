"""Image references: parsing (the distribution reference grammar), which registry a reference names, the
platform's registry-relative pinned form (``project/app@sha256:…``), and registry addresses (host[:port]).

Which registry: a reference whose first component has a ``.`` or a ``:`` or is ``localhost`` names that
registry host. A host-less reference whose first component is the deploying project's name
(``shop/web:1.2`` in project shop) names the platform registry; any other host-less reference
(``nginx:1.25``) is Docker Hub's, as every container runtime reads it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yunzhou.domain.errors import UserError, invalid

BUILT = "."  # a Score container image that means "the image the platform built from the source"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_REPOSITORY = 255


@dataclass(frozen=True)
class ImageReference:
    registry: str | None  # host[:port]; None: no host written (the platform's or Docker Hub's)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(value: str, path: str = "image") -> ImageReference:
    """``[host[:port]/]repository[:tag][@sha256:…]``; a UserError naming ``path`` when it is not one."""
    rest, _, digest = value.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise invalid(path, f"{value!r}: a digest must be sha256: followed by 64 lower-case hex digits")
    name, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = rest[: len(rest) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
        if not _TAG.fullmatch(tag):
            raise invalid(path, f"{value!r}: the tag {tag!r} is not a valid tag")
    registry: str | None = None
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry = check_registry_address(first, path)
        name = remainder
    if not _REPOSITORY.fullmatch(name) or len(name) > _MAX_REPOSITORY:
        raise invalid(
            path,
            f"{value!r} is not an image reference: [host[:port]/]name[:tag][@sha256:digest], the name in "
            "lower-case letters, digits and . _ - separated by /",
        )
    return ImageReference(registry, name, tag, digest or None)


def check_registry_address(value: str, path: str = "registry") -> str:
    """host[:port] — a DNS name, an IPv4 address or a bracketed IPv6 address, an optional port 1-65535;
    no scheme, no path, no credentials."""
    what = "must be host[:port] (e.g. 10.0.0.5:5000 or registry.example.com), without scheme or path"
    if not isinstance(value, str) or not value or len(value) > 261 or any(c in value for c in "/@ \t?#"):
        raise invalid(path, what)
    host, port = value, None
    if value.startswith("["):
        host, _, after = value[1:].partition("]")
        if after:
            if not after.startswith(":"):
                raise invalid(path, what)
            port = after[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise invalid(path, what) from None
    else:
        if value.count(":") > 1:
            raise invalid(path, what + "; write an IPv6 address in brackets")
        host, colon, port_text = value.partition(":")
        port = port_text if colon else None
        if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
            raise invalid(path, what)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535 and port[0] != "0"):
        raise invalid(path, f"{what}; the port must be 1-65535")
    return value


def is_platform_reference(ref: ImageReference, project: str, platform_registry: str | None) -> bool:
    """Whether ``ref`` names the platform registry: host-less with the project as first component, or
    written with the platform registry's own address."""
    if ref.registry is None:
        return ref.repository.split("/", 1)[0] == project and "/" in ref.repository
    return platform_registry is not None and ref.registry == platform_registry


def platform_ref(value: str) -> ImageReference | None:
    """``project/app@sha256:…`` (a release's pinned platform image) parsed; None for anything else."""
    try:
        ref = parse_reference(value)
    except UserError:
        return None
    if ref.registry is not None or ref.tag is not None or ref.digest is None or "/" not in ref.repository:
        return None
    return ref


def container_images(images: Mapping[str, str], built: str | None) -> dict[str, str]:
    """Each container's image: the release's built image (``built``) for containers whose Score image is
    ``.``, or for the only container of a one-container Score; every other container keeps its own."""
    if built is None:
        return dict(images)
    chosen = {name for name, image in images.items() if image == BUILT}
    if not chosen and len(images) == 1:
        chosen = set(images)
    return {name: built if name in chosen else image for name, image in images.items()}


def pinned_image(value: str | None) -> str | None:
    """A release's ``image`` when it is a pinned platform image (a build's); None for the summary of the
    Score's images that releases without a build keep there."""
    return value if value and platform_ref(value) is not None else None
